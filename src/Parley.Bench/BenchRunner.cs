using Parley.Bench.Scenarios;

namespace Parley.Bench;

/// <summary>Runs one scenario: what <c>parley bench</c> and the smoke tests both call.</summary>
public static class BenchRunner
{
    /// <summary>
    /// Validates <paramref name="options"/> (throwing <see cref="BenchUsageException"/>), runs the scenario and
    /// returns its result; progress lines go to <paramref name="progress"/> about once a second. Every phase is
    /// bounded in time; cancelling stops early and yields a failed result.
    /// </summary>
    public static async Task<BenchResult> RunAsync(BenchOptions options, TextWriter? progress = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        using var context = new BenchContext(options, progress is null ? TextWriter.Null : TextWriter.Synchronized(progress));
        Scenario scenario = options.Scenario switch
        {
            BenchScenario.Fanout or BenchScenario.Channels or BenchScenario.Durable => new ThroughputScenario(context),
            BenchScenario.Connections => new ConnectionsScenario(context),
            BenchScenario.Recovery => new RecoveryScenario(context),
            _ => throw new BenchUsageException($"unknown scenario {options.Scenario}"),
        };
        await using (scenario)
        {
            return await scenario.RunAsync(cancellationToken);
        }
    }

    /// <summary>The exit code for <paramref name="result"/>: 0 when it is ok, 1 otherwise.</summary>
    public static int ExitCode(BenchResult result) => result.Ok ? 0 : 1;
}
