using System.Diagnostics;

namespace Parley.Bench.Scenarios;

/// <summary>
/// connections: open C idle sockets joined to one channel, as fast as the connect concurrency allows; hold
/// them for the duration (heartbeating), then close. Reports the connect rate and the server's resident
/// memory per connection: (RSS at the end of the hold − RSS before connecting) / C.
/// </summary>
/// <remarks>
/// With a warm-up, a batch of up to 100 connections is opened, joined and closed first, so the server's
/// one-time costs (JIT, pools) are not charged to the measured connections.
/// </remarks>
internal sealed class ConnectionsScenario(BenchContext context) : Scenario(context)
{
    private const int WarmupBatch = 100;

    public override async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var o = Options;
        var topic = Topic("idle");
        var notes = new List<string>();
        string? rssSource = o.ServerPid is not null ? "proc" : o.Target == BenchTarget.Parley ? "metrics" : null;
        if (rssSource is null)
        {
            notes.Add("no server memory figures: pass --server-pid (only parley serves /metrics)");
        }

        if (o.Warmup > TimeSpan.Zero)
        {
            var warm = new List<BenchConnection>();
            for (var i = 0; i < Math.Min(WarmupBatch, o.Connections); i++)
            {
                warm.Add(new BenchConnection(Context, -1));
            }
            await ConnectAndJoinAsync(warm.Select(c => (c, (IReadOnlyList<string>)[topic])).ToList(), null, null, cancellationToken);
            await Parallel.ForEachAsync(warm, static async (c, _) => await c.CloseAsync(TimeSpan.FromSeconds(2)));
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(500, o.Warmup.TotalMilliseconds)), CancellationToken.None);
        }

        var rssBefore = await RssAsync(cancellationToken);
        var work = new List<(BenchConnection, IReadOnlyList<string>)>();
        for (var i = 0; i < o.Connections; i++)
        {
            work.Add((NewConnection(), [topic]));
        }
        var connectS = await ConnectAndJoinAsync(work, null, null, cancellationToken);
        if (Context.Errors.Count > 0 || Interrupted)
        {
            return BaseResult(0, o.Warmup.TotalSeconds, null, notes) with { Connections = o.Connections, ConnectS = Math.Round(connectS, 3) };
        }

        StartBackground();
        var cpu0 = ServerCpuMicros();
        var t0 = Stopwatch.GetTimestamp();
        await PhaseAsync("hold", o.Duration, () =>
        {
            var open = All.Count(static c => c.IsOpen);
            return $"open {open}/{o.Connections}  connect {Format.Count(o.Connections / connectS)}/s" +
                (Context.Errors.Count > 0 ? $"  errors {Context.Errors.Count}" : "");
        }, cancellationToken);
        var rssAfter = await RssAsync(cancellationToken);
        var cpu1 = ServerCpuMicros();
        var t1 = Stopwatch.GetTimestamp();
        if (All.Any(static c => !c.IsOpen) && Context.Errors.Count == 0)
        {
            Context.Errors.Add($"{All.Count(static c => !c.IsOpen)} connections closed during the hold");
        }

        double? perConnection = rssBefore is { } before && rssAfter is { } after ? Math.Round((after - before) / (double)o.Connections, 1) : null;
        return BaseResult(Elapsed.Seconds(t0, t1), o.Warmup.TotalSeconds, cpu0 is { } a && cpu1 is { } b ? (b - a) / 1000.0 : null, notes) with
        {
            Connections = o.Connections,
            ConnectS = Math.Round(connectS, 3),
            ConnectPerS = Rate(o.Connections, connectS),
            RssBeforeBytes = rssBefore,
            RssAfterBytes = rssAfter,
            RssPerConnectionBytes = perConnection,
            RssSource = rssBefore is null ? null : rssSource,
        };
    }

    private async Task<long?> RssAsync(CancellationToken cancellationToken)
    {
        if (Options.ServerPid is { } pid)
        {
            return ServerProbe.RssFromProc(pid);
        }
        if (Options.Target != BenchTarget.Parley)
        {
            return null;
        }
        try
        {
            return await ServerProbe.RssFromMetricsAsync(Context.Http, Options.Url, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }
}
