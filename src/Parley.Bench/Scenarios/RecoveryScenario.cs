using System.Collections.Concurrent;
using System.Diagnostics;
using Parley.Bench.Protocols;

namespace Parley.Bench.Scenarios;

/// <summary>
/// recovery (parley only): C subscribers and one publisher on a room; the publisher publishes at
/// <see cref="BenchOptions.Rate"/> throughout. After the warm-up every subscriber drops its socket at once
/// (no close handshake), stays away for <see cref="BenchOptions.Away"/>, then reconnects and rejoins with
/// <c>{since: last offset received, epoch}</c> while publishing continues for <see cref="BenchOptions.Duration"/>.
/// Then the publisher stops and the bench waits until every subscriber holds every offset up to the
/// publisher's last acked one.
/// </summary>
/// <remarks>
/// <c>recovered_all_s</c> is the time from the start of the reconnect until every subscriber had every
/// message acked before the reconnect began (what it missed while away); <c>lost</c> and
/// <c>duplicates</c> are checked against every offset up to the final one.
/// </remarks>
internal sealed class RecoveryScenario(BenchContext context) : Scenario(context)
{
    private readonly List<BenchConnection> _subscribers = [];
    private readonly Dictionary<BenchConnection, string?> _epochs = [];
    private readonly ConcurrentDictionary<BenchConnection, long> _rejoinedAt = new();
    private long _rejoinsNotRecovered;

    public override async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var o = Options;
        var topic = Topic("recovery");
        var notes = new List<string>();
        for (var i = 0; i < o.Subscribers; i++)
        {
            _subscribers.Add(NewConnection(countsDeliveries: true, tracker: new RecoveryTracker()));
        }
        var publisher = NewConnection();
        Publishers.Add(publisher);

        await ConnectAndJoinAsync(_subscribers.Select(s => (s, (IReadOnlyList<string>)[topic])).ToList(), null, (s, reply) =>
        {
            s.Tracker!.Start(reply.Offset);
            lock (_epochs)
            {
                _epochs[s] = reply.Epoch;
            }
        }, cancellationToken);
        await ConnectAndJoinAsync([(publisher, [topic])], null, null, cancellationToken);
        if (Context.Errors.Count > 0 || Interrupted)
        {
            return Result(0, null, 0, 0, 0, null, notes);
        }

        StartBackground();
        var baseOffset = _subscribers[0].Tracker!.Base;
        _ = publisher.StartPublishingAsync(o.Window, o.Size, o.Rate);
        await PhaseAsync("publish", o.Warmup, () => Line(publisher), cancellationToken);

        // Every subscriber drops at once, as if the network went away.
        await Task.WhenAll(_subscribers.Select(static s => s.DropAsync()));
        var lastBeforeDrop = _subscribers.Select(static s => s.Tracker!.Contiguous).ToArray();
        await PhaseAsync("away", o.Away, () => Line(publisher), cancellationToken);

        var goal = Math.Max(publisher.MaxAckedOffset, baseOffset);
        foreach (var s in _subscribers)
        {
            s.Tracker!.SetGoal(goal);
        }
        var cpu0 = ServerCpuMicros();
        var t0 = Stopwatch.GetTimestamp();
        var rejoin = ConnectAndJoinAsync(_subscribers.Select(s => (s, (IReadOnlyList<string>)[topic])).ToList(),
            s => new JoinPosition(s.Tracker!.Contiguous, _epochs.GetValueOrDefault(s)),
            (s, reply) =>
            {
                _rejoinedAt[s] = Stopwatch.GetTimestamp();
                if (reply.Recovered != true)
                {
                    Interlocked.Increment(ref _rejoinsNotRecovered);
                }
            }, cancellationToken);
        await PhaseAsync("recover", o.Duration, () => Line(publisher), cancellationToken);
        await rejoin;
        var recoverSeconds = Elapsed.Seconds(t0, Stopwatch.GetTimestamp());

        // Stop publishing; what was acked by then is what every subscriber must end up with.
        await DrainAsync(TimeSpan.FromSeconds(5));
        var target = Math.Max(publisher.MaxAckedOffset, baseOffset);
        await PhaseAsync("catch-up", o.Timeout, () => Line(publisher), cancellationToken,
            done: () => _subscribers.All(s => s.Tracker!.Contiguous >= target || !s.IsOpen));
        var cpu1 = ServerCpuMicros();

        // A subscriber has recovered once it is back (rejoined) and holds everything acked before the reconnect began.
        double? recoveredAll = _subscribers.All(s => s.Tracker!.CaughtUpAt != 0 && _rejoinedAt.ContainsKey(s))
            ? Math.Round(_subscribers.Max(s => Elapsed.Seconds(t0, Math.Max(s.Tracker!.CaughtUpAt, _rejoinedAt[s]))), 3)
            : null;
        var lost = _subscribers.Sum(s => s.Tracker!.Missing(target));
        var duplicates = _subscribers.Sum(static s => s.Tracker!.Duplicates);
        var missed = _subscribers.Select((s, i) => (double)(goal - lastBeforeDrop[i])).Average();
        if (_rejoinsNotRecovered > 0)
        {
            notes.Add($"{_rejoinsNotRecovered} rejoins answered recovered: false");
        }
        return Result(target - baseOffset, recoveredAll, lost, duplicates, missed,
            cpu0 is { } a && cpu1 is { } b ? (b - a) / 1000.0 : null, notes, target, recoverSeconds);
    }

    private string Line(BenchConnection publisher)
    {
        var caughtUp = _subscribers.Count(s => s.Tracker!.CaughtUpAt != 0 && s.IsOpen);
        var open = _subscribers.Count(static s => s.IsOpen);
        return $"offset {publisher.MaxAckedOffset}  open {open}/{_subscribers.Count}  caught up {caughtUp}/{_subscribers.Count}" +
            (Context.Errors.Count > 0 ? $"  errors {Context.Errors.Count}" : "");
    }

    private BenchResult Result(long published, double? recoveredAll, long lost, long duplicates, double missed, double? cpuMs, List<string> notes, long lastOffset = 0, double seconds = 0)
    {
        var o = Options;
        var recovered = recoveredAll is not null && lost == 0 && _rejoinsNotRecovered == 0 && Context.Errors.Count == 0;
        var result = BaseResult(seconds, o.Warmup.TotalSeconds, cpuMs, notes);
        return result with
        {
            Ok = result.Ok && recovered && duplicates == 0,
            Publishers = 1,
            Subscribers = o.Subscribers,
            Channels = 1,
            Size = o.Size,
            Window = o.Window,
            Rate = o.Rate > 0 ? o.Rate : null,
            AwayS = o.Away.TotalSeconds,
            Published = published,
            LastOffset = lastOffset,
            MissedPerSubscriber = Math.Round(missed, 1),
            Replayed = _subscribers.Sum(static s => s.Replayed),
            Deliveries = _subscribers.Sum(static s => s.Deliveries),
            Recovered = recovered,
            RecoveredAllS = recoveredAll,
            Lost = lost,
            Duplicates = duplicates,
        };
    }
}
