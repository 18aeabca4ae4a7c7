import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig, redactSecrets } from '../src/config/load.js';
import { loadPromptFile } from '../src/config/prompts.js';
import { defaultStrategy, planRoles, resolveParams } from '../src/config/resolve.js';
import { makePlan } from '../src/search/plan.js';
import { UserError } from '../src/core/errors.js';
import { registerBuiltinBackends } from '../src/backends/builtin.js';
import { registerBackend, ROLES } from '../src/backends/registry.js';

// placeholder backends the planning tests name (planRoles refuses names nobody registered)
for (const name of ['x', 'fake', 'other']) registerBackend({ name, description: 'test placeholder', roles: ROLES, create: () => ({}) });

const FIX = path.join(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), 'fixtures');

describe('official ReflectionFlow config layout', () => {
  it('maps the NVILA config: yes/no verifier, reflection with refinement, 2 × 16 = 32 images', () => {
    const { config, layout } = loadConfigFile(path.join(FIX, 'official_flux.1_dev_nvilascore.json'));
    expect(layout).toBe('official');
    expect(config.search).toMatchObject({ strategy: 'reflection', samples: 2, width: 2, depth: 15 });
    expect(config.size).toBe(1024);
    expect(config.roles?.verifier).toMatchObject({ mode: 'yesno', model: 'Efficient-Large-Model/NVILA-Lite-2B-Verifier' });
    expect(config.roles?.generator).toMatchObject({ model: 'black-forest-labs/FLUX.1-dev', guidance: 3.5, steps: 30 });
    expect(config.roles?.corrector).toMatchObject({ lora: 'LORA_PATH' });
    expect(makePlan(resolveParams(config, {})).budget).toBe(32);
  });

  it('maps the GPT config: rubric verifier scored by overall_score', () => {
    const { config } = loadConfigFile(path.join(FIX, 'official_flux.1_dev_gptscore.json'));
    expect(config.roles?.verifier).toMatchObject({ mode: 'rubric', metric: 'overall_score' });
  });

  it('chooses the strategy from the run_reflection / run_refinement switches', () => {
    const base = { pipeline_args: {}, verifier_args: { name: 'openai' }, search_args: { search_branch: 4, search_rounds: 2 } };
    expect(parseConfig(base).config.search?.strategy).toBe('noise');
    expect(parseConfig({ ...base, prompt_refiner_args: { run_refinement: true } }).config.search?.strategy).toBe('noise+prompt');
    const refl = parseConfig({ ...base, reflection_args: { run_reflection: true }, prompt_refiner_args: { run_refinement: false } }).config;
    expect(refl.search?.strategy).toBe('reflection');
    const plans = planRoles({ ...refl, backend: 'x' }, 'reflection');
    expect(plans.map((p) => p.role)).toEqual(['generator', 'verifier', 'reflector', 'corrector']);
  });

  it('rejects an official file with a broken field, naming it', () => {
    expect(() => parseConfig({ pipeline_args: {}, verifier_args: { name: 'x' }, search_args: { search_branch: 0, search_rounds: 1 } })).toThrow(
      /search_args\.search_branch/,
    );
  });
});

describe('our config', () => {
  it('reads YAML, merges flags over the file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rf-cfg-'));
    const file = path.join(dir, 'c.yaml');
    writeFileSync(file, 'backend: fake\nsearch:\n  strategy: noise+prompt\n  samples: 6\nroles:\n  verifier:\n    backend: other\n    concurrency: 3\n');
    const { config } = loadConfigFile(file);
    const params = resolveParams(config, { samples: 10 });
    expect(params).toMatchObject({ strategy: 'noise+prompt', samples: 10, width: 2, depth: 4 });
    const plans = planRoles(config, params.strategy);
    expect(plans).toEqual([
      { role: 'generator', backend: 'fake', options: {}, required: true },
      { role: 'verifier', backend: 'other', options: { concurrency: 3 }, required: true },
      { role: 'refiner', backend: 'fake', options: {}, required: true },
    ]);
  });

  it('never keeps secrets in what goes to run.json', () => {
    const stored = redactSecrets({ roles: { verifier: { apiKey: 'sk-abc', apiKeyEnv: 'OPENAI_API_KEY', model: 'm' } }, token: 't' });
    expect(stored).toEqual({ roles: { verifier: { apiKeyEnv: 'OPENAI_API_KEY', model: 'm' } } });
  });

  it('takes credentials out of URLs: user-info and key-like query parameters, nothing else', () => {
    const stored = redactSecrets({
      roles: {
        verifier: { baseURL: 'http://u:sk-live-123@vlm.local:8000/v1' },
        generator: { baseURL: 'https://gen.example/v1beta?key=AIza-secret&alt=json', prompt: 'a cat: http is not a url' },
      },
      list: ['https://x.example/a?sig=abc&sv=2024'],
    });
    const text = JSON.stringify(stored);
    for (const secret of ['sk-live-123', 'AIza-secret', 'abc&', 'u:']) expect(text).not.toContain(secret);
    expect(stored.roles.verifier.baseURL).toBe('http://vlm.local:8000/v1');
    expect(stored.roles.generator.baseURL).toBe('https://gen.example/v1beta?alt=json');
    expect(stored.roles.generator.prompt).toBe('a cat: http is not a url');
    expect(stored.list).toEqual(['https://x.example/a?sv=2024']);
  });

  it('an unknown backend is refused where roles are planned, for run, eval and serve alike', () => {
    expect(() => planRoles({ backend: 'nope' }, 'noise')).toThrow(/unknown backend 'nope' \(known: .*module:<path>\)/);
    // serve plans every role the backends have, none required
    registerBackend({ name: 'gen-only', description: 'test placeholder', roles: ['generator'], create: () => ({}) });
    expect(planRoles({ backend: 'gen-only' }, 'every').map((p) => [p.role, p.required])).toEqual([['generator', false]]);
  });

  it('a needed role cannot be disabled', () => {
    expect(() => planRoles({ backend: 'x', roles: { corrector: { enabled: false } } }, 'reflection')).toThrow(UserError);
  });
});

describe('GenEval prompt files', () => {
  it('reads GenEval’s own 553-line metadata unchanged', () => {
    const records = loadPromptFile(path.join(FIX, 'geneval_evaluation_metadata.jsonl'));
    expect(records).toHaveLength(553);
    expect(records[0]).toEqual({ tag: 'single_object', include: [{ class: 'bench', count: 1 }], prompt: 'a photo of a bench' });
    const position = records.find((r) => r.tag === 'position')!;
    expect(position.include[1]!.position).toEqual([expect.any(String), 0]);
    const counting = records.find((r) => r.tag === 'counting')!;
    expect(counting.exclude![0]!.count).toBe(counting.include[0]!.count + 1);
  });
});

describe('the default strategy', () => {
  it('is the fullest the backends allow: reflection with a reflector and a corrector, else noise+prompt with a refiner', () => {
    registerBuiltinBackends();
    expect(defaultStrategy(parseConfig({ backend: 'procedural' }).config)).toBe('reflection');
    // the embedded models serve all five roles: the full method offline
    expect(defaultStrategy(parseConfig({ backend: 'embedded' }).config)).toBe('reflection');
    expect(defaultStrategy(parseConfig({ backend: 'embedded', roles: { refiner: { enabled: false } } }).config)).toBe('reflection');
    // a reflector role on a backend that cannot reflect (fal makes images only): prompt-level scaling
    expect(defaultStrategy(parseConfig({ backend: 'embedded', roles: { reflector: { backend: 'fal' } } }).config)).toBe('noise+prompt');
    expect(defaultStrategy(parseConfig({ backend: 'fal', roles: { verifier: { backend: 'embedded' } } }).config)).toBe('noise');
  });
});
