/** A configuration loadConfig refuses; `problems` has one line per refusal. */
export class ConfigError extends Error {
  /** Every refusal, one line each (loadConfig reports them all at once, not one per attempt). */
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = [message]) {
    super(message);
    this.name = 'ConfigError';
    this.problems = problems;
  }

  /** One refusal reads as itself; several as a count and one line each. */
  static of(problems: readonly string[]): ConfigError {
    const message = problems.length === 1 ? (problems[0] as string) : `${problems.length} problems:\n - ${problems.join('\n - ')}`;
    return new ConfigError(message, problems);
  }
}
