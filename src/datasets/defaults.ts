/** Triplets per GenRef-Shapes shard unless `--shard-size` says otherwise. */
export const DEFAULT_SHARD_SIZE = 10_000;
