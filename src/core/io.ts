/**
 * What a search records and where it keeps its images: the port between the loop (search/) and whatever stores a
 * run (store/'s run directory, search/'s `MemoryIO`, eval's shared pool). Types only, so that the store below the
 * search can implement it.
 */
import type { Role } from './strategies.js';
import type { Evaluation, Image, Reflection } from './types.js';
import type { Usage } from './usage.js';

/** One line of events.jsonl: one finished (or failed) call. */
export interface CallEvent {
  /**
   * deterministic key of the call: what it does and the candidate it concerns, e.g. `generate:r0-i000-s1234`,
   * `verify:r0-i000-s1234`, `reflect:r1-c0-s99`, `correct:r2-c0-s77` (the verb, not the role: keys of older runs
   * must stay the same for a resume to replay them)
   */
  key: string;
  role: Role;
  backend: string;
  /** ids of the images the call read */
  inputIds: string[];
  /** id of the image the call wrote (generate, correct) */
  outputId?: string;
  /** the candidate the result belongs to */
  candidateId: string;
  /** the prompt given to generate/correct */
  prompt?: string;
  seed?: number;
  evaluation?: Evaluation;
  reflection?: Reflection;
  refinedPrompt?: string;
  /** what the service reported for the call (tokens) and the retries it took */
  usage?: Usage;
  ms: number;
  error?: string;
  /** ISO time the call finished */
  at: string;
}

/**
 * Where a search keeps what it makes. The run store implements it on disk (and replays finished calls on
 * resume); `MemoryIO` keeps everything in memory for library use and tests.
 */
export interface SearchIO {
  /** a finished, successful call with this key from an earlier attempt, if any */
  cached(key: string): CallEvent | undefined;
  loadImage(id: string): Promise<Image>;
  /** must be durable before `record` of the call that made it */
  saveImage(id: string, image: Image): Promise<void>;
  record(event: CallEvent): Promise<void>;
}
