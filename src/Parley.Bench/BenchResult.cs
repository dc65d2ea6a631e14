using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Parley.Bench;

/// <summary>
/// The outcome of one run, serialized with snake_case names (docs/bench.md lists them; <c>bench/compare</c>
/// depends on them, so keep them stable). Fields of other scenarios are null and left out of the JSON,
/// except <see cref="ServerCpuUsPerDelivery"/>, which is always written (null without <c>--server-pid</c>).
/// </summary>
public sealed record BenchResult
{
    // ---- every scenario ----

    /// <summary>fanout, channels, connections, durable or recovery.</summary>
    public required string Scenario { get; init; }

    /// <summary>parley, signalr or socketio.</summary>
    public required string Target { get; init; }

    /// <summary>The server's base URL.</summary>
    public required string Url { get; init; }

    /// <summary>True when the run completed without errors (and, for recovery, lost nothing and repeated nothing). Exit code 0 iff true.</summary>
    public bool Ok { get; init; }

    /// <summary>True when the target's acks mean a durable commit (parley); false for the peers, which keep no history.</summary>
    public bool Durable { get; init; }

    /// <summary>The measured window in seconds (recovery: publishing after the reconnect began; connections: the hold).</summary>
    public double DurationS { get; init; }

    /// <summary>The warm-up before it, in seconds.</summary>
    public double WarmupS { get; init; }

    /// <summary>Errors: failed connects, unexpected closes, refused pushes (other than rate_limited).</summary>
    public long Errors { get; init; }

    /// <summary>Pushes refused with <c>rate_limited</c> (the hub was not started for benchmarking).</summary>
    public long RateLimited { get; init; }

    /// <summary>Up to five distinct error messages.</summary>
    public List<string>? ErrorMessages { get; init; }

    /// <summary>Things to know when reading the numbers (e.g. "not durable").</summary>
    public List<string>? Notes { get; init; }

    /// <summary>Server CPU time (user + system) in the measured window, ms; null without <c>--server-pid</c>.</summary>
    public double? ServerCpuMs { get; init; }

    /// <summary>Server CPU µs per delivery in the measured window; null without <c>--server-pid</c> or without deliveries.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public double? ServerCpuUsPerDelivery { get; init; }

    // ---- fanout, channels, durable ----

    /// <summary>Publishing connections (also recovery).</summary>
    public int? Publishers { get; init; }

    /// <summary>Subscribing connections (also recovery).</summary>
    public int? Subscribers { get; init; }

    /// <summary>Channels used.</summary>
    public int? Channels { get; init; }

    /// <summary>Body size in bytes.</summary>
    public int? Size { get; init; }

    /// <summary>Pushes in flight per publisher.</summary>
    public int? Window { get; init; }

    /// <summary>Subscribers sampled for latency.</summary>
    public int? Sample { get; init; }

    /// <summary>Pushes per second per publisher; null when unlimited.</summary>
    public double? Rate { get; init; }

    /// <summary>Messages delivered to subscribers in the window.</summary>
    public long? Deliveries { get; init; }

    /// <summary>Deliveries per second.</summary>
    public double? DeliveriesPerS { get; init; }

    /// <summary>Pushes acknowledged in the window.</summary>
    public long? Acked { get; init; }

    /// <summary>Acknowledged pushes per second (durable: acked appends/s).</summary>
    public double? AckedPerS { get; init; }

    /// <summary>The headline latency in ms: publish→delivery (fanout, channels) or push→ack (durable); see <see cref="LatencyKind"/>.</summary>
    public LatencySummary? LatencyMs { get; init; }

    /// <summary><c>publish_to_delivery</c> or <c>push_to_ack</c>.</summary>
    public string? LatencyKind { get; init; }

    /// <summary>Push→ack latency of the publishers, ms.</summary>
    public LatencySummary? AckLatencyMs { get; init; }

    /// <summary>Server CPU µs per acknowledged push; null without <c>--server-pid</c>.</summary>
    public double? ServerCpuUsPerAck { get; init; }

    // ---- connections ----

    /// <summary>Idle connections opened and joined.</summary>
    public int? Connections { get; init; }

    /// <summary>Seconds to open and join them all.</summary>
    public double? ConnectS { get; init; }

    /// <summary>Connections opened and joined per second.</summary>
    public double? ConnectPerS { get; init; }

    /// <summary>Server resident memory before connecting, bytes.</summary>
    public long? RssBeforeBytes { get; init; }

    /// <summary>Server resident memory at the end of the hold, bytes.</summary>
    public long? RssAfterBytes { get; init; }

    /// <summary>(after − before) / connections, bytes.</summary>
    public double? RssPerConnectionBytes { get; init; }

    /// <summary>Where RSS came from: <c>proc</c> (/proc/PID/status) or <c>metrics</c> (/metrics).</summary>
    public string? RssSource { get; init; }

    // ---- recovery ----

    /// <summary>Seconds the subscribers stayed away.</summary>
    public double? AwayS { get; init; }

    /// <summary>Messages the publisher had acknowledged when it stopped (the offsets to recover up to).</summary>
    public long? Published { get; init; }

    /// <summary>The publisher's last acknowledged offset when it stopped.</summary>
    public long? LastOffset { get; init; }

    /// <summary>Average messages each subscriber missed while away (what it had to recover).</summary>
    public double? MissedPerSubscriber { get; init; }

    /// <summary>Replayed deliveries (sent with the join's ref).</summary>
    public long? Replayed { get; init; }

    /// <summary>True when every rejoin answered <c>recovered: true</c> and every subscriber got everything up to <see cref="LastOffset"/>.</summary>
    public bool? Recovered { get; init; }

    /// <summary>Seconds from the start of the reconnect until every subscriber had everything published before it (null if they never did).</summary>
    public double? RecoveredAllS { get; init; }

    /// <summary>Offsets up to <see cref="LastOffset"/> that some subscriber never received, summed over subscribers. Must be 0.</summary>
    public long? Lost { get; init; }

    /// <summary>Offsets some subscriber received twice, summed. Must be 0.</summary>
    public long? Duplicates { get; init; }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>One JSON object, one line.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Parses <see cref="ToJson"/> output.</summary>
    public static BenchResult? FromJson(string json) => JsonSerializer.Deserialize<BenchResult>(json, JsonOptions);

    /// <summary>A two-column table for people.</summary>
    public string ToTable()
    {
        var rows = new List<(string, string)>();
        void Row(string name, string? value)
        {
            if (value is not null)
            {
                rows.Add((name, value));
            }
        }

        Row("scenario", Scenario);
        Row("target", Durable ? Target : Target + " (not durable)");
        Row("url", Url);
        Row("publishers", Publishers?.ToString(CultureInfo.InvariantCulture));
        Row("subscribers", Subscribers?.ToString(CultureInfo.InvariantCulture));
        Row("channels", Channels?.ToString(CultureInfo.InvariantCulture));
        Row("size", Size is { } s ? $"{s} B" : null);
        Row("window", Window?.ToString(CultureInfo.InvariantCulture));
        Row("rate", Rate is { } r ? $"{Format.Count(r)}/s per publisher" : null);
        Row("warm-up / measured", $"{WarmupS:0.#} s / {DurationS:0.##} s");
        Row("deliveries/s", DeliveriesPerS is { } d ? Format.Count(d) : null);
        Row("acked/s", AckedPerS is { } a ? Format.Count(a) : null);
        if (LatencyMs is { } latency)
        {
            Row(LatencyKind == "push_to_ack" ? "ack latency p50/p99/p999" : "latency p50/p99/p999", Format.Latency(latency));
        }
        if (AckLatencyMs is { } ack && LatencyKind != "push_to_ack")
        {
            Row("ack latency p50/p99/p999", Format.Latency(ack));
        }
        Row("connections", Connections?.ToString(CultureInfo.InvariantCulture));
        Row("connect rate", ConnectPerS is { } c ? $"{Format.Count(c)}/s ({ConnectS:0.00} s)" : null);
        Row("server RSS before/after", RssBeforeBytes is { } b && RssAfterBytes is { } af ? $"{Format.Bytes(b)} / {Format.Bytes(af)} ({RssSource})" : null);
        Row("server RSS/connection", RssPerConnectionBytes is { } rc ? $"{rc / 1024:0.0} KiB" : null);
        Row("away", AwayS is { } away ? $"{away:0.##} s" : null);
        Row("published (last offset)", Published is { } p ? $"{p} ({LastOffset})" : null);
        Row("missed per subscriber", MissedPerSubscriber is { } m ? $"{m:0.#}" : null);
        Row("replayed", Replayed?.ToString(CultureInfo.InvariantCulture));
        Row("recovered all in", Recovered is null ? null : RecoveredAllS is { } ra ? $"{ra:0.000} s" : "never");
        Row("recovered", Recovered is { } rec ? (rec ? "yes" : "NO") : null);
        Row("lost / duplicates", Lost is { } l ? $"{l} / {Duplicates}" : null);
        Row("server CPU", ServerCpuMs is { } cpu ? $"{cpu:0} ms" : "n/a (pass --server-pid)");
        Row("server CPU/delivery", ServerCpuUsPerDelivery is { } cd ? $"{cd:0.000} µs" : null);
        Row("server CPU/ack", ServerCpuUsPerAck is { } ca ? $"{ca:0.000} µs" : null);
        Row("rate limited", RateLimited > 0 ? RateLimited.ToString(CultureInfo.InvariantCulture) : null);
        Row("errors", Errors.ToString(CultureInfo.InvariantCulture));
        foreach (var message in ErrorMessages ?? [])
        {
            Row("  error", message);
        }
        foreach (var note in Notes ?? [])
        {
            Row("note", note);
        }
        Row("result", Ok ? "ok" : "FAILED");

        var width = rows.Max(static r => r.Item1.Length);
        var text = new StringBuilder();
        foreach (var (name, value) in rows)
        {
            text.Append(name.PadRight(width + 2)).Append(value).Append('\n');
        }
        return text.ToString();
    }
}

/// <summary>Human number formats for progress lines and tables.</summary>
internal static class Format
{
    public static string Count(double value) => value switch
    {
        >= 10_000_000 => (value / 1_000_000).ToString("0.0", CultureInfo.InvariantCulture) + "M",
        >= 1_000_000 => (value / 1_000_000).ToString("0.00", CultureInfo.InvariantCulture) + "M",
        >= 10_000 => (value / 1000).ToString("0.0", CultureInfo.InvariantCulture) + "k",
        >= 1000 => (value / 1000).ToString("0.00", CultureInfo.InvariantCulture) + "k",
        _ => value.ToString("0.#", CultureInfo.InvariantCulture),
    };

    public static string Bytes(double bytes) => bytes >= 1024 * 1024
        ? (bytes / (1024 * 1024)).ToString("0.0", CultureInfo.InvariantCulture) + " MiB"
        : (bytes / 1024).ToString("0.0", CultureInfo.InvariantCulture) + " KiB";

    public static string Ms(double ms) => ms.ToString(ms < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture) + "ms";

    public static string Latency(LatencySummary s) => s.Count == 0
        ? "n/a (no samples)"
        : $"{Ms(s.P50)} / {Ms(s.P99)} / {Ms(s.P999)}  (max {Ms(s.Max)}, {Count(s.Count)} samples)";
}
