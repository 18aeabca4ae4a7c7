/** ShapeWorld: the offline world of coloured shapes, its GenEval-style prompts and its pixel evaluator. */
export * from './random.js';
export * from './shapes.js';
export * from './rules.js';
export * from './scene.js';
export * from './render.js';
export * from './prompts.js';
export { detectObjects, evaluateImage, type Judgement } from './evaluate.js';
export { runAgreementBench, formatAgreement, type AgreementReport, type AgreementOptions } from './bench-agreement.js';
