/**
 * Images one search may plan unless the user lifts the limit (`run --budget-limit`): a typo such as `--depth
 * 1000000` is refused before it runs for days.
 */
export const BUDGET_LIMIT = 4096;
