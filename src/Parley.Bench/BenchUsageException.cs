namespace Parley.Bench;

/// <summary>A bad command line or a request the bench refuses (exit code 2). The message says what to change.</summary>
public sealed class BenchUsageException(string message) : Exception(message);
