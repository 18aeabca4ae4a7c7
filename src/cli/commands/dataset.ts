import { Command, InvalidArgumentError } from 'commander';
import { UserError } from '../../core/errors.js';
import { MODELS_DIR } from '../../backends/embedded/files.js';
import type { buildGenref, GenrefIndex } from '../../datasets/genref.js';
import type { SplitName } from '../../shapeworld/prompts.js';
import { DEFAULT_SHARD_SIZE } from '../../datasets/defaults.js';

// each action imports what it uses (image codecs, tar, worker pools), so that --help and --version load none of it
const genref = () => import('../../datasets/genref.js');

/** Default of `dataset genref --model-prompts`: what fits beside 100,000 rule-based triplets in 30 min on 2 cores. */
export const GENREF_MODEL_PROMPTS = 500;
/** Default of `dataset genref --edit-prompts` (× 4 seeds: about 4 minutes of generator time on 2 cores). */
export const GENREF_EDIT_PROMPTS = 500;

function intArg(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`);
    }
    return n;
  };
}

function shareArg(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new InvalidArgumentError(`${name} must be a number from 0 to 1`);
    return n;
  };
}

/** `reflectionflow dataset <prompts|images|pairs|genref|export>`: the ShapeWorld datasets, one subcommand each. */
export function datasetCommand(): Command {
  return new Command('dataset')
    .description('ShapeWorld datasets')
    .addCommand(promptsCommand())
    .addCommand(imagesCommand())
    .addCommand(pairsCommand())
    .addCommand(genrefCommand())
    .addCommand(exportCommand());
}

/** `reflectionflow dataset prompts --split test|train [--count N] [--seed S] [--out file]` */
function promptsCommand(): Command {
  return new Command('prompts')
    .description('write a ShapeWorld prompt split as GenEval metadata JSONL (stdout unless --out)')
    .requiredOption('--split <split>', 'test (the benchmark) or train (paraphrased training prompts)')
    .option('--count <n>', 'training prompts to write (train only)', intArg('--count', 1), 1000)
    .option('--seed <s>', 'training sampler seed (train only)', intArg('--seed', 0), 0)
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (opts: { split: string; count: number; seed: number; out?: string }) => {
      if (opts.split !== 'test' && opts.split !== 'train') {
        throw new UserError(`unknown split '${opts.split}' (splits: test, train)`);
      }
      const split = opts.split as SplitName;
      const { promptsToJsonl, splitPrompts, writePromptsJsonl } = await import('../../shapeworld/prompts.js');
      if (opts.out) {
        const n = await writePromptsJsonl(split, opts.out, { count: opts.count, seed: opts.seed });
        process.stderr.write(`wrote ${n} ${split} prompts to ${opts.out}\n`);
      } else {
        process.stdout.write(promptsToJsonl(splitPrompts(split, { count: opts.count, seed: opts.seed })));
      }
    });
}

/** `reflectionflow dataset images --kind generator|verifier --out dir …`: a training set for training/. */
function imagesCommand(): Command {
  return new Command('images')
    .description('write a training set for training/ (images.u8, tokens.i32, labels.u8, meta.json, records.jsonl)')
    .requiredOption('--kind <kind>', 'generator (correct renders of training prompts) or verifier (generator samples labelled by the evaluator, plus renders with defects)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--count <n>', 'generator: renders; verifier: generator samples', intArg('--count', 1), 50000)
    .option('--rendered <n>', 'verifier: rendered correct/defective scenes added', intArg('--rendered', 0), 6000)
    .option('--seed <s>', 'seed', intArg('--seed', 0), 1)
    .option('--steps <n>', 'verifier: generator sampler steps', intArg('--steps', 1))
    .option('--models <dir>', 'verifier: folder with generator.onnx (default: the shipped models)')
    .option('--compositional <share>', 'share of compositional-kind training prompts (0–1): generator renders, verifier samples', shareArg('--compositional'), 0)
    .option('--layout <share>', "generator: share of images captioned with their layout, the refiner's wording (0–1)", shareArg('--layout'), 0)
    .option('--balanced', 'the four compositional kinds in equal shares (default: as drawn, where three objects are ~3 % of them)', false)
    .action(async (opts: {
      kind: string; out: string; count: number; rendered: number; seed: number; steps?: number; models?: string; compositional: number; layout: number;
      balanced: boolean;
    }) => {
      const log = timedLog();
      const { writeGeneratorDataset, writeVerifierDataset } = await import('../../datasets/images.js');
      if (opts.kind === 'generator') {
        await writeGeneratorDataset(opts.out, opts.count, opts.seed, (n) => n % 10240 === 0 && log(`rendered ${n}/${opts.count}`), {
          compositional: opts.compositional,
          layout: opts.layout,
          balanced: opts.balanced,
        });
      } else if (opts.kind === 'verifier') {
        const { FlowGenerator } = await import('../../backends/embedded/generator.js');
        const { evaluateImage } = await import('../../shapeworld/evaluate.js');
        const generator = await FlowGenerator.load(opts.models ?? MODELS_DIR, opts.steps ? { steps: opts.steps } : {});
        const r = await writeVerifierDataset(opts.out, {
          generated: opts.count,
          rendered: opts.rendered,
          seed: opts.seed,
          compositional: opts.compositional,
          balanced: opts.balanced,
          generate: async (records, seeds) =>
            (await generator.sample(records.map((rec, i) => ({ tokens: generator.tokenizer.encode(rec.prompt), seed: seeds[i]! })))).map((im) => im.png),
          judge: async (png, record) => (await evaluateImage(png, record)).correct,
          onProgress: (done, total, pos) => done % 640 === 0 && log(`sampled ${done}/${total}, ${pos} judged correct`),
        });
        log(`wrote ${r.count} items (${r.positives} generator samples judged correct)`);
      } else {
        throw new UserError(`unknown kind '${opts.kind}' (kinds: generator, verifier)`);
      }
      process.stderr.write(`dataset in ${opts.out}\n`);
    });
}

/** `reflectionflow dataset pairs --out dir [--samples dir…] …`: the verifier's pair set. */
function pairsCommand(): Command {
  return new Command('pairs')
    .description("write the verifier's pair set: each image (generator samples from --samples folders, plus renders) judged by the evaluator against its own and related training prompts")
    .requiredOption('--out <dir>', 'output folder')
    .option('--samples <dir...>', 'folders written by `dataset images --kind verifier` (their generator samples)', [])
    .option('--rendered <n>', 'rendered correct/defective scenes added as images', intArg('--rendered', 0), 10000)
    .option('--prompts-per-image <n>', 'prompts judged per image, its own included', intArg('--prompts-per-image', 1), 6)
    .option('--seed <s>', 'seed', intArg('--seed', 0), 1)
    .action(async (opts: { out: string; samples: string[]; rendered: number; promptsPerImage: number; seed: number }) => {
      const log = timedLog();
      let next = 0;
      const { writeVerifierPairs } = await import('../../datasets/pairs.js');
      const r = await writeVerifierPairs(opts.out, {
        sampleDirs: opts.samples,
        rendered: opts.rendered,
        promptsPerImage: opts.promptsPerImage,
        seed: opts.seed,
        onProgress: (n, total) => {
          if (n >= next || n === total) {
            log(`images ${n}/${total}`);
            next = n + 5000;
          }
        },
      });
      log(
        `wrote ${r.pairs} pairs of ${r.images} images to ${opts.out}: ${(r.positives / Math.max(1, r.pairs)).toFixed(3)} positive; ` +
          `own prompts ${r.own}, ${(r.ownPositives / Math.max(1, r.own)).toFixed(3)} positive`,
      );
    });
}

interface GenrefFlags {
  out: string;
  count: number;
  modelPrompts: number;
  modelSeeds: number;
  refineCount: number;
  editPrompts: number;
  editSeeds: number;
  compositional: number;
  seed: number;
  shardSize: number;
  steps?: number;
  workers?: number;
  models?: string;
}

/** `reflectionflow dataset genref --out dir …`: GenRef-Shapes, the reflection triplets. */
function genrefCommand(): Command {
  return new Command('genref')
    .description(
      'write GenRef-Shapes: (flawed image, reflection, enhanced image) triplets of training prompts as WebDataset tar shards ' +
        '(rule-based perturbations of renders, plus generator samples judged by the evaluator)',
    )
    .requiredOption('--out <dir>', 'output folder (genref-000000.tar, … and index.json)')
    .option('--count <n>', 'rule-based triplets: a correct render and a copy with one defect', intArg('--count', 0), 100_000)
    .option('--model-prompts <n>', 'model-based: training prompts sampled with the embedded generator (0: none)', intArg('--model-prompts', 0), GENREF_MODEL_PROMPTS)
    .option('--model-seeds <k>', 'model-based: generator seeds per prompt (a triplet needs one failing and one passing)', intArg('--model-seeds', 2), 4)
    .option('--refine-count <n>', 'refinement-based: training prompts sampled before and after the embedded prompt refiner (same seed)', intArg('--refine-count', 0), 500)
    .option(
      '--edit-prompts <n>',
      'edit-based: training prompts sampled; each sample and a copy edited on its own pixels (its reflection carried out, or one defect given) make a triplet',
      intArg('--edit-prompts', 0),
      GENREF_EDIT_PROMPTS,
    )
    .option('--edit-seeds <k>', 'edit-based: generator seeds per prompt', intArg('--edit-seeds', 1), 4)
    .option(
      '--compositional <share>',
      'share of each source\'s prompts of the compositional kinds (coloured relations and counts, three objects, counts with another object; training combinations only)',
      shareArg('--compositional'),
      0,
    )
    .option('--seed <s>', 'seed', intArg('--seed', 0), 0)
    .option('--shard-size <n>', 'triplets per shard', intArg('--shard-size', 1), DEFAULT_SHARD_SIZE)
    .option('--steps <n>', 'generator sampler steps (default: the model card\'s)', intArg('--steps', 1))
    .option('--workers <n>', 'worker threads rendering and judging (default: available cores; 0: in-process)', intArg('--workers', 0))
    .option('--models <dir>', 'folder with generator.onnx (default: the shipped models)')
    .action(genrefAction);
}

async function genrefAction(opts: GenrefFlags): Promise<void> {
  const log = timedLog();
  const { generate, refine, generatorName } = await genrefModels(opts);
  const next: Record<string, number> = {};
  const r = await (await genref()).buildGenref({
    out: opts.out,
    count: opts.count,
    modelPrompts: opts.modelPrompts,
    modelSeeds: opts.modelSeeds,
    refineCount: opts.refineCount,
    editPrompts: opts.editPrompts,
    editSeeds: opts.editSeeds,
    compositional: opts.compositional,
    seed: opts.seed,
    shardSize: opts.shardSize,
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(generate ? { generate, generatorName } : {}),
    ...(refine ? { refine } : {}),
    command: commandLine(),
    onLog: log,
    onProgress: (source, done, total) => {
      if (done >= (next[source] ?? 0) || done === total) {
        log(`${source}: ${done}/${total}`);
        // renders take ~20 ms each here, generator prompts ~0.7 s: a line every few minutes for either
        next[source] = done + (source === 'rule' ? 10_000 : 250);
      }
    },
  });
  log(summary(r.index, opts.out));
}

type GenrefOptions = Parameters<typeof buildGenref>[0];

/**
 * The embedded generator (model-, refinement- and edit-based triplets) and the embedded refiner's rewrite
 * (refinement-based), loaded only when a source that uses them is asked for.
 */
async function genrefModels(opts: GenrefFlags): Promise<{ generate?: GenrefOptions['generate']; refine?: GenrefOptions['refine']; generatorName?: string }> {
  if (!(opts.modelPrompts > 0 || opts.refineCount > 0 || opts.editPrompts > 0)) return {};
  const { FlowGenerator } = await import('../../backends/embedded/generator.js');
  const generator = await FlowGenerator.load(opts.models ?? MODELS_DIR, opts.steps ? { steps: opts.steps } : {});
  const generate: GenrefOptions['generate'] = async (reqs) =>
    (await generator.sample(reqs.map((r) => ({ tokens: generator.tokenizer.encode(r.prompt), seed: r.seed })))).map((im) => im.png);
  const { readsLayouts } = await import('../../backends/embedded/check.js');
  if (opts.refineCount > 0 && !readsLayouts(generator.tokenizer)) {
    throw new UserError(`--refine-count: the generator in ${opts.models ?? MODELS_DIR} cannot read the refiner's layout wording; pass --refine-count 0`);
  }
  if (opts.refineCount === 0) return { generate, generatorName: generator.identity };
  // the embedded refiner's rewrite, from the evaluator's reading of the failing sample and its reflection
  const { refinePrompt } = await import('../../shapeworld/refine.js');
  const { canonicalSpec } = await import('../../backends/embedded/spec.js');
  const { parseEdit } = await import('../../shapeworld/edits.js');
  const { parsePrompt } = await import('../../shapeworld/prompts.js');
  const refine: GenrefOptions['refine'] = (prompt, detections, reflection) =>
    refinePrompt(canonicalSpec(parsePrompt(prompt)), detections, reflection.items.map(parseEdit).filter((e) => e !== null));
  return { generate, refine, generatorName: generator.identity };
}

/** `reflectionflow dataset export <runDir...> --out dir`: chain steps of finished runs as triplet candidates. */
function exportCommand(): Command {
  return new Command('export')
    .description('write every chain step of finished runs as GenRef-Shapes triplet candidates (parent image, reflection, child image, both verifier scores)')
    .argument('<runDir...>', 'run directories (runs/<id>) of noise+prompt or reflection runs')
    .requiredOption('--out <dir>', 'output folder (genref-000000.tar, … and index.json)')
    .option('--shard-size <n>', 'triplets per shard', intArg('--shard-size', 1), DEFAULT_SHARD_SIZE)
    .action(async (dirs: string[], opts: { out: string; shardSize: number }) => {
      const r = await (await genref()).exportRunTriplets(dirs, { out: opts.out, shardSize: opts.shardSize, command: commandLine() });
      process.stderr.write(`${summary(r.index, opts.out)} (${String(r.index.options.improved)} steps improved the verifier score)\n`);
    });
}

/** A progress line on stderr with the seconds since the command started. */
function timedLog(): (msg: string) => void {
  const started = performance.now();
  return (msg: string) => process.stderr.write(`${msg}  ${((performance.now() - started) / 1000).toFixed(0)}s\n`);
}

function commandLine(): string {
  return ['reflectionflow', ...process.argv.slice(2)].join(' ');
}

function summary(index: GenrefIndex, out: string): string {
  const by = Object.entries(index.sources)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(', ');
  const dropped = Object.values(index.dropped).reduce((n, d) => n + Object.values(d).reduce((a, b) => a + b, 0), 0);
  return `wrote ${index.triplets} triplets${by ? ` (${by})` : ''} in ${index.shards.length} shard(s) to ${out}; ${dropped} candidates dropped (see index.json)`;
}
