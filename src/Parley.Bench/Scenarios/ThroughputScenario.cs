using System.Diagnostics;
using System.Globalization;

namespace Parley.Bench.Scenarios;

/// <summary>
/// fanout, channels and durable: publishers keep a window of pushes in flight while subscribers count
/// deliveries; warm up, then measure deliveries/s, acked/s and latency over the window.
/// </summary>
/// <remarks>
/// Publishers join the channels they publish to on every target (Parley requires it), so they also
/// receive the broadcasts; they drain them without counting. Only subscribers count deliveries.
/// </remarks>
internal sealed class ThroughputScenario(BenchContext context) : Scenario(context)
{
    private readonly List<BenchConnection> _subscribers = [];
    private long _lastDeliveries;
    private long _lastAcked;
    private long _lastTime;
    private LatencyHistogram _lastLatency = new();

    private bool AckIsHeadline => Options.Scenario == BenchScenario.Durable;

    public override async Task<BenchResult> RunAsync(CancellationToken cancellationToken)
    {
        var o = Options;
        var work = new List<(BenchConnection, IReadOnlyList<string>)>();
        int channelCount;
        switch (o.Scenario)
        {
            case BenchScenario.Fanout:
                channelCount = 1;
                for (var i = 0; i < o.Subscribers; i++)
                {
                    work.Add((NewSubscriber(i), [Topic("0")]));
                }
                for (var p = 0; p < o.Publishers; p++)
                {
                    work.Add((NewPublisher(), [Topic("0")]));
                }
                break;
            case BenchScenario.Channels:
                channelCount = o.Channels;
                for (var i = 0; i < o.Channels * o.PerChannel; i++)
                {
                    work.Add((NewSubscriber(i), [Topic((i % o.Channels).ToString(CultureInfo.InvariantCulture))]));
                }
                for (var p = 0; p < o.Publishers; p++)
                {
                    var topics = new List<string>();
                    for (var c = p; c < o.Channels; c += o.Publishers)
                    {
                        topics.Add(Topic(c.ToString(CultureInfo.InvariantCulture)));
                    }
                    work.Add((NewPublisher(), topics));
                }
                break;
            default:
                channelCount = o.Publishers;
                for (var p = 0; p < o.Publishers; p++)
                {
                    work.Add((NewPublisher(), [Topic(p.ToString(CultureInfo.InvariantCulture))]));
                }
                break;
        }

        await ConnectAndJoinAsync(work, null, null, cancellationToken);
        var notes = new List<string>();
        if (!Context.Protocol.Durable && o.Scenario == BenchScenario.Durable)
        {
            notes.Add($"not durable: {BenchOptions.TargetName(o.Target)} keeps no history, so an ack means the message was broadcast, not committed");
        }
        if (Context.Errors.Count > 0 || Interrupted)
        {
            return Result(channelCount, 0, 0, 0, 0, new(), new(), null, notes);
        }

        StartBackground();
        foreach (var publisher in Publishers)
        {
            _ = publisher.StartPublishingAsync(o.Window, o.Size, o.Rate);
        }
        MarkProgress();
        await PhaseAsync("warmup", o.Warmup, Describe, cancellationToken);

        var deliveries0 = Deliveries();
        var acked0 = Acked();
        var latency0 = Merge(_subscribers.Select(static s => s.DeliveryLatency));
        var ack0 = Merge(Publishers.Select(static p => p.AckLatency));
        var cpu0 = ServerCpuMicros();
        var t0 = Stopwatch.GetTimestamp();
        await PhaseAsync("measure", o.Duration, Describe, cancellationToken);
        var t1 = Stopwatch.GetTimestamp();
        var cpu1 = ServerCpuMicros();
        var deliveries = Deliveries() - deliveries0;
        var acked = Acked() - acked0;
        var latency = Merge(_subscribers.Select(static s => s.DeliveryLatency));
        latency.Subtract(latency0);
        var ack = Merge(Publishers.Select(static p => p.AckLatency));
        ack.Subtract(ack0);

        await DrainAsync(TimeSpan.FromSeconds(5));
        double? cpuMs = cpu0 is { } a && cpu1 is { } b ? (b - a) / 1000.0 : null;
        return Result(channelCount, Elapsed.Seconds(t0, t1), o.Warmup.TotalSeconds, deliveries, acked, latency, ack, cpuMs, notes);
    }

    private BenchConnection NewSubscriber(int index)
    {
        var sampled = index < Options.Sample && Options.Scenario != BenchScenario.Durable;
        var subscriber = NewConnection(countsDeliveries: true, latency: sampled ? new LatencyHistogram() : null);
        _subscribers.Add(subscriber);
        return subscriber;
    }

    private BenchConnection NewPublisher()
    {
        var publisher = NewConnection();
        Publishers.Add(publisher);
        return publisher;
    }

    private long Deliveries() => _subscribers.Sum(static s => s.Deliveries);

    private long Acked() => Publishers.Sum(static p => p.Acked);

    private void MarkProgress()
    {
        _lastTime = Stopwatch.GetTimestamp();
        _lastDeliveries = Deliveries();
        _lastAcked = Acked();
        _lastLatency = CurrentLatency();
    }

    private LatencyHistogram CurrentLatency() => AckIsHeadline
        ? Merge(Publishers.Select(static p => p.AckLatency))
        : Merge(_subscribers.Select(static s => s.DeliveryLatency));

    private string Describe()
    {
        var now = Stopwatch.GetTimestamp();
        var seconds = Elapsed.Seconds(_lastTime, now);
        var deliveries = Deliveries();
        var acked = Acked();
        var latency = CurrentLatency();
        var interval = CurrentLatency();
        interval.Subtract(_lastLatency);
        var line = AckIsHeadline
            ? $"acked {Format.Count((acked - _lastAcked) / seconds)}/s  ack p99 {Format.Ms(interval.ValueAtPercentile(99) / 1000.0)}"
            : $"deliveries {Format.Count((deliveries - _lastDeliveries) / seconds)}/s  acked {Format.Count((acked - _lastAcked) / seconds)}/s  p99 {Format.Ms(interval.ValueAtPercentile(99) / 1000.0)}";
        _lastTime = now;
        _lastDeliveries = deliveries;
        _lastAcked = acked;
        _lastLatency = latency;
        var errors = Context.Errors.Count + Context.RateLimited;
        return errors > 0 ? line + $"  errors {errors}" : line;
    }

    private BenchResult Result(int channels, double seconds, double warmup, long deliveries, long acked, LatencyHistogram latency, LatencyHistogram ack, double? cpuMs, List<string> notes)
    {
        var o = Options;
        var durable = o.Scenario == BenchScenario.Durable;
        var result = BaseResult(seconds, warmup, cpuMs, notes) with
        {
            Publishers = o.Publishers,
            Subscribers = _subscribers.Count,
            Channels = channels,
            Size = o.Size,
            Window = o.Window,
            Sample = durable ? null : Math.Min(o.Sample, _subscribers.Count),
            Rate = o.Rate > 0 ? o.Rate : null,
            Deliveries = durable ? null : deliveries,
            DeliveriesPerS = durable ? null : Rate(deliveries, seconds),
            Acked = acked,
            AckedPerS = Rate(acked, seconds),
            LatencyMs = durable ? ack.Summarize() : latency.Summarize(),
            LatencyKind = durable ? "push_to_ack" : "publish_to_delivery",
            AckLatencyMs = ack.Summarize(),
            ServerCpuUsPerDelivery = cpuMs is { } ms && deliveries > 0 && !durable ? Math.Round(ms * 1000 / deliveries, 4) : null,
            ServerCpuUsPerAck = cpuMs is { } ms2 && acked > 0 ? Math.Round(ms2 * 1000 / acked, 3) : null,
        };
        if (!durable && deliveries == 0 && result.Ok)
        {
            result = result with { Ok = false, Errors = result.Errors + 1, ErrorMessages = ["no message was delivered in the measured window"] };
        }
        return result;
    }
}
