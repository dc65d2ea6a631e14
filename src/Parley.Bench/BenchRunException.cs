namespace Parley.Bench;

/// <summary>Something went wrong while running (connect, handshake, join): the run fails (exit code 1).</summary>
public sealed class BenchRunException(string message) : Exception(message);
