import type { Evaluation, Image, PromptMeta, Reflection } from './types.js';

/** What every role object declares: who it is and how many calls it takes at once. */
export interface RoleInfo {
  /**
   * Throws a UserError when this role can never handle the prompt (e.g. a word outside a closed vocabulary), so
   * that a run refuses it before anything is written rather than failing every call.
   */
  checkPrompt?(prompt: string): void;
  /**
   * Image roles: throws a UserError when this role can never make images of `size` pixels per side (a model with
   * a fixed size, a renderer's bounds), so that a run refuses the size before anything is written.
   */
  checkSize?(size: number): void;
  /** backend name as written in events and run.json, e.g. `embedded`, `openai:gpt-4o` */
  readonly name: string;
  /** most calls in flight at once */
  readonly concurrency: number;
  /**
   * Roles with the same group (e.g. every role served by one HTTP endpoint) share one concurrency limit, the
   * first one declared. Without a group each role object has its own.
   */
  readonly limitGroup?: object;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface GenerateRequest {
  prompt: string;
  seed: number;
  size?: number;
}

export interface CorrectRequest {
  image: Image;
  /** the prompt for this round (refined, or the original) */
  prompt: string;
  reflection: Reflection;
  seed: number;
  size?: number;
}

export interface VerifyRequest {
  image: Image;
  /** always the original prompt */
  prompt: string;
  meta?: PromptMeta;
}

export interface ReflectRequest {
  image: Image;
  prompt: string;
  currentPrompt: string;
  evaluation?: Evaluation;
  previousReflection?: Reflection;
}

export interface RefineRequest {
  prompt: string;
  currentPrompt: string;
  image: Image;
  evaluation?: Evaluation;
  reflection?: Reflection;
}

export interface Generator extends RoleInfo {
  /** identifies model and sampler settings: same identity, prompt and seed ⇒ same image (enables eval caches) */
  readonly identity?: string;
  generate(req: GenerateRequest, opts?: CallOptions): Promise<Image>;
}

export interface Corrector extends RoleInfo {
  correct(req: CorrectRequest, opts?: CallOptions): Promise<Image>;
}

export interface Verifier extends RoleInfo {
  verify(req: VerifyRequest, opts?: CallOptions): Promise<Evaluation>;
}

export interface Reflector extends RoleInfo {
  reflect(req: ReflectRequest, opts?: CallOptions): Promise<Reflection>;
}

export interface PromptRefiner extends RoleInfo {
  refine(req: RefineRequest, opts?: CallOptions): Promise<string>;
}

/** The set of roles one search uses. Which are required depends on the strategy. */
export interface RoleSet {
  generator: Generator;
  verifier: Verifier;
  reflector?: Reflector;
  refiner?: PromptRefiner;
  corrector?: Corrector;
}

/** The text a corrector is conditioned on, as in the paper: `refined prompt [Reflexion]: reflection`. */
export function correctorInstruction(prompt: string, reflection: Reflection): string {
  return `${prompt} [Reflexion]: ${reflection.text}`;
}
