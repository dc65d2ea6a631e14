using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Security.Cryptography;
using Parley.Bench.Protocols;
using Parley.Protocol;

namespace Parley.Bench.Scenarios;

/// <summary>
/// What every scenario shares: connecting and joining many sockets with bounded concurrency, the
/// background loop (heartbeats staggered over the interval, pacing of rate-limited publishers),
/// phases with a progress line about once a second, server CPU readings and closing everything.
/// </summary>
internal abstract class Scenario : IAsyncDisposable
{
    private readonly CancellationTokenSource _background = new();
    private Task _backgroundLoop = Task.CompletedTask;
    private readonly long _runStart = Stopwatch.GetTimestamp();

    protected Scenario(BenchContext context)
    {
        Context = context;
        Options = context.Options;
        RunId = Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();
    }

    protected BenchContext Context { get; }
    protected BenchOptions Options { get; }

    /// <summary>Random per run, so channels of different runs never mix.</summary>
    protected string RunId { get; }

    /// <summary>Every connection of the run (heartbeats go to all).</summary>
    protected List<BenchConnection> All { get; } = [];

    /// <summary>The connections that publish (paced by the background loop).</summary>
    protected List<BenchConnection> Publishers { get; } = [];

    /// <summary>Set when the run was interrupted (Ctrl-C).</summary>
    protected bool Interrupted { get; private set; }

    public abstract Task<BenchResult> RunAsync(CancellationToken cancellationToken);

    protected string Topic(string suffix) => $"room:{Options.ChannelPrefix}-{RunId}-{suffix}";

    protected string Name => $"{Options.Scenario.ToString().ToLowerInvariant()} {BenchOptions.TargetName(Options.Target)}";

    protected BenchConnection NewConnection(bool countsDeliveries = false, LatencyHistogram? latency = null, RecoveryTracker? tracker = null)
    {
        var connection = new BenchConnection(Context, All.Count) { CountsDeliveries = countsDeliveries, DeliveryLatency = latency, Tracker = tracker };
        All.Add(connection);
        return connection;
    }

    /// <summary>
    /// Connects each connection and joins its topics, <see cref="BenchOptions.ConnectConcurrency"/> at a time,
    /// bounded by <see cref="BenchOptions.Timeout"/>. Failures are counted as errors. Returns the seconds taken.
    /// </summary>
    protected async Task<double> ConnectAndJoinAsync(
        IReadOnlyList<(BenchConnection Connection, IReadOnlyList<string> Topics)> work,
        Func<BenchConnection, JoinPosition?>? since,
        Action<BenchConnection, JoinReply>? joined,
        CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(Options.Timeout);
        try
        {
            await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = Options.ConnectConcurrency, CancellationToken = bound.Token }, async (item, ct) =>
            {
                try
                {
                    await item.Connection.ConnectAsync(ct);
                    foreach (var topic in item.Topics)
                    {
                        var reply = await item.Connection.JoinAsync(topic, since?.Invoke(item.Connection), ct);
                        joined?.Invoke(item.Connection, reply);
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
                {
                    Context.Errors.Add(DescribeConnectError(ex));
                }
            });
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Context.Errors.Add($"connecting and joining took longer than {Options.Timeout.TotalSeconds:0}s");
        }
        catch (OperationCanceledException)
        {
            Interrupted = true;
        }
        return Elapsed.Seconds(start, Stopwatch.GetTimestamp());
    }

    private string DescribeConnectError(Exception ex)
    {
        if (ex is BenchRunException)
        {
            return ex.Message;
        }
        var inner = ex;
        while (inner.InnerException is not null)
        {
            inner = inner.InnerException;
        }
        var what = ex is WebSocketException && (ex.Message.Contains("'401'", StringComparison.Ordinal) || ex.Message.Contains("'403'", StringComparison.Ordinal))
            ? $" ({BenchHints.Credential})"
            : ex is WebSocketException && ex.Message.Contains("status code", StringComparison.Ordinal)
            ? $" (is the server at {Options.Url} a {BenchOptions.TargetName(Options.Target)} server?)"
            : inner is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.ConnectionRefused }
                ? " (is the server running?)"
                : "";
        var message = ReferenceEquals(inner, ex) ? ex.Message : $"{ex.Message} {inner.Message}";
        return $"cannot connect to {SecretRedactor.Redact(Context.SocketUri.ToString())}: {SecretRedactor.Redact(message)}{what}";
    }

    /// <summary>Starts heartbeats (staggered: each second one interval's share of the connections) and the publisher pacer.</summary>
    protected void StartBackground()
    {
        _backgroundLoop = BackgroundAsync(_background.Token);
    }

    private async Task BackgroundAsync(CancellationToken stop)
    {
        var heartbeatSeconds = (int)(Context.Protocol.HeartbeatInterval?.TotalSeconds ?? 0);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(10));
        long tick = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                tick++;
                foreach (var publisher in Publishers)
                {
                    if (publisher.IsPublishing)
                    {
                        await publisher.PumpAsync();
                    }
                }
                if (heartbeatSeconds > 0 && tick % 100 == 0)
                {
                    var second = tick / 100 % heartbeatSeconds;
                    foreach (var connection in All)
                    {
                        if (connection.Index % heartbeatSeconds == second && connection.IsOpen)
                        {
                            await connection.HeartbeatAsync();
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Waits <paramref name="length"/> (or until <paramref name="done"/> says so, or Ctrl-C), printing
    /// <paramref name="describe"/> about once a second.
    /// </summary>
    protected async Task PhaseAsync(string phase, TimeSpan length, Func<string> describe, CancellationToken cancellationToken, Func<bool>? done = null)
    {
        if (Interrupted)
        {
            return;
        }
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(length.TotalSeconds * Stopwatch.Frequency);
        var nextLine = start + Stopwatch.Frequency;
        while (true)
        {
            var now = Stopwatch.GetTimestamp();
            if (now >= end || done?.Invoke() == true)
            {
                return;
            }
            var until = Math.Min(Math.Min(end, nextLine), done is null ? long.MaxValue : now + (Stopwatch.Frequency / 50));
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(Math.Max(0.001, Elapsed.Seconds(now, until))), cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interrupted = true;
                return;
            }
            if (Stopwatch.GetTimestamp() >= nextLine)
            {
                var elapsed = Elapsed.Seconds(_runStart, Stopwatch.GetTimestamp());
                Context.Progress.WriteLine($"{Name}  {elapsed.ToString("0.0", CultureInfo.InvariantCulture)}s  {phase,-10} {describe()}");
                nextLine += Stopwatch.Frequency;
            }
        }
    }

    /// <summary>Server CPU (user + system) in µs, or null without <c>--server-pid</c>.</summary>
    protected long? ServerCpuMicros() => Options.ServerPid is { } pid ? ServerProbe.CpuMicros(pid) : null;

    /// <summary>Waits (bounded) until no publisher has a push in flight.</summary>
    protected async Task DrainAsync(TimeSpan bound)
    {
        foreach (var publisher in Publishers)
        {
            publisher.StopPublishing();
        }
        var deadline = Stopwatch.GetTimestamp() + (long)(bound.TotalSeconds * Stopwatch.Frequency);
        while (Publishers.Any(static p => p.InFlight > 0 && p.IsOpen) && Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(10);
        }
        var unanswered = Publishers.Where(static p => p.IsOpen).Sum(static p => p.InFlight);
        if (unanswered > 0)
        {
            Context.Errors.Add($"{unanswered} pushes were never answered");
        }
    }

    /// <summary>Merges the histograms of <paramref name="sources"/> into a new one.</summary>
    protected static LatencyHistogram Merge(IEnumerable<LatencyHistogram?> sources)
    {
        var merged = new LatencyHistogram();
        foreach (var source in sources)
        {
            if (source is not null)
            {
                merged.Add(source);
            }
        }
        return merged;
    }

    /// <summary>The fields every result has.</summary>
    protected BenchResult BaseResult(double durationS, double warmupS, double? serverCpuMs, List<string> notes) => new()
    {
        Scenario = Options.Scenario.ToString().ToLowerInvariant(),
        Target = BenchOptions.TargetName(Options.Target),
        Url = $"{Options.Url.Scheme}://{Options.Url.Authority}",
        Durable = Context.Protocol.Durable,
        DurationS = Math.Round(durationS, 3),
        WarmupS = Math.Round(warmupS, 3),
        Errors = Context.Errors.Count + (Interrupted ? 1 : 0),
        RateLimited = Context.RateLimited,
        ErrorMessages = Interrupted ? [.. Context.Errors.Messages(), "interrupted"] : NullIfEmpty(Context.Errors.Messages()),
        Notes = NullIfEmpty(notes),
        ServerCpuMs = serverCpuMs is { } ms ? Math.Round(ms, 1) : null,
        Ok = Context.Errors.Count == 0 && Context.RateLimited == 0 && !Interrupted,
    };

    protected static List<string>? NullIfEmpty(List<string> list) => list.Count == 0 ? null : list;

    protected static double Rate(double count, double seconds) => seconds > 0 ? Math.Round(count / seconds, 1) : 0;

    /// <summary>Stops the background loop and closes every socket (bounded).</summary>
    public async ValueTask DisposeAsync()
    {
        await _background.CancelAsync();
        await _backgroundLoop;
        _background.Dispose();
        await Parallel.ForEachAsync(All, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(64, Options.ConnectConcurrency) },
            static async (connection, _) => await connection.CloseAsync(TimeSpan.FromSeconds(2)));
    }
}
