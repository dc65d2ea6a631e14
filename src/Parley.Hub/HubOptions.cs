namespace Parley.Hub;

/// <summary>
/// The hub's limits and timings. Every default lives here and is documented in docs/protocol.md
/// §Limits. A setting left at its default is never null; <see cref="Validate"/> names the setting and
/// its bounds when a value is out of range.
/// </summary>
public sealed class HubOptions
{
    /// <summary>Largest inbound WebSocket message (after reassembly), in bytes. Bigger → close 1009. Default 64 KiB.</summary>
    public int MaxFrameBytes { get; set; } = 64 * 1024;

    /// <summary>Largest <c>body</c> of a <c>msg</c> push, in UTF-8 bytes. Bigger → error <c>too_large</c>. Default 16 KiB.</summary>
    public int MaxBodyBytes { get; set; } = 16 * 1024;

    /// <summary>Largest <c>meta</c> object of a <c>msg</c> push, in UTF-8 bytes of JSON. Bigger → error <c>too_large</c>. Default 8 KiB.</summary>
    public int MaxMetaBytes { get; set; } = 8 * 1024;

    /// <summary>Longest <c>client_id</c>, in characters. Default 128.</summary>
    public int MaxClientIdLength { get; set; } = 128;

    /// <summary>Sustained pushes per second per connection (token bucket refill rate). Heartbeats are not counted. Default 100.</summary>
    public double PushesPerSecond { get; set; } = 100;

    /// <summary>Token bucket size: pushes a connection may send at once. Default 200.</summary>
    public int PushBurst { get; set; } = 200;

    /// <summary>Rate-limited pushes tolerated within <see cref="RateLimitWindow"/> before the socket is closed with 1008. Default 400.</summary>
    public int RateLimitRejectionsBeforeClose { get; set; } = 400;

    /// <summary>The window over which rate-limit rejections are counted. Default 10 s.</summary>
    public TimeSpan RateLimitWindow { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most topics one socket may have joined at once. More → join error <c>too_many_topics</c>. Default 100.</summary>
    public int MaxTopicsPerConnection { get; set; } = 100;

    /// <summary>A socket that sends nothing for this long is closed with 4000. Default 60 s (clients heartbeat every 30 s).</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long before a socket's credential expires the hub pushes <c>token_expired</c> on <c>hub:lobby</c>;
    /// at expiry the socket is closed with 4401 unless the client refreshed in-band. Default 60 s.
    /// </summary>
    public TimeSpan TokenExpiryWarning { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Bytes a connection may have queued for sending; overflow closes it with 4008 "slow consumer". Default 4 MiB.</summary>
    public int MaxOutboundQueueBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Queued bytes above which a subscriber of a snapshot + delta topic (<c>fleet:instances</c>, <c>logs:</c>,
    /// <c>events:messages</c>) counts as behind: its deltas are dropped and, once its queue drains, it gets a
    /// fresh snapshot instead of being closed. 0 (the default) means a quarter of <see cref="MaxOutboundQueueBytes"/>
    /// (1 MiB with the defaults); otherwise at most half of it.
    /// </summary>
    public int StreamLagBytes { get; set; }

    /// <summary><see cref="StreamLagBytes"/> with its default applied.</summary>
    public int EffectiveStreamLagBytes => StreamLagBytes == 0 ? MaxOutboundQueueBytes / 4 : StreamLagBytes;

    /// <summary>Messages kept per topic. Default 10,000.</summary>
    public int RetentionMessagesPerTopic { get; set; } = 10_000;

    /// <summary>Age after which messages are removed. Default 7 days.</summary>
    public TimeSpan RetentionMaxAge { get; set; } = TimeSpan.FromDays(7);

    /// <summary>How often retention runs. Default 1 minute.</summary>
    public TimeSpan RetentionInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Messages read from the store per replay page on a recovering join. Default 500.</summary>
    public int ReplayPageSize { get; set; } = 500;

    /// <summary>Default page size of the <c>history</c> event. Default 50.</summary>
    public int HistoryDefaultLimit { get; set; } = 50;

    /// <summary>Largest page the <c>history</c> event returns. Default 200.</summary>
    public int HistoryMaxLimit { get; set; } = 200;

    /// <summary>Most appends committed in one store transaction. Default 1,024.</summary>
    public int AppendBatchMax { get; set; } = 1024;

    /// <summary>Appends waiting for the store before pushers' reads are paused. Default 65,536.</summary>
    public int AppendQueueCapacity { get; set; } = 65_536;

    /// <summary>
    /// How long presence changes of a topic are gathered before one <c>presence_diff</c> goes out to its
    /// subscribers (Phoenix.Tracker batches every 1,500 ms). Zero sends every change at once. Default 50 ms.
    /// </summary>
    public TimeSpan PresenceBatchInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Longest presence <c>summary</c>, in characters (UTF-16 code units). Longer → error <c>too_large</c>. Default 200.</summary>
    public int MaxPresenceSummaryLength { get; set; } = 200;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting out of bounds.</summary>
    public void Validate()
    {
        Check(MaxFrameBytes, 1024, 16 * 1024 * 1024, nameof(MaxFrameBytes));
        Check(MaxBodyBytes, 1, MaxFrameBytes, nameof(MaxBodyBytes));
        Check(MaxMetaBytes, 0, MaxFrameBytes, nameof(MaxMetaBytes));
        Check(MaxClientIdLength, 1, 1024, nameof(MaxClientIdLength));
        if (PushesPerSecond is <= 0 or > 1_000_000)
        {
            throw new ArgumentOutOfRangeException(nameof(PushesPerSecond), PushesPerSecond, $"{nameof(PushesPerSecond)} must be in (0, 1000000]");
        }
        Check(PushBurst, 1, 1_000_000, nameof(PushBurst));
        Check(RateLimitRejectionsBeforeClose, 1, int.MaxValue, nameof(RateLimitRejectionsBeforeClose));
        Check(RateLimitWindow, TimeSpan.FromMilliseconds(100), TimeSpan.FromHours(1), nameof(RateLimitWindow));
        Check(MaxTopicsPerConnection, 1, 100_000, nameof(MaxTopicsPerConnection));
        Check(IdleTimeout, TimeSpan.FromMilliseconds(100), TimeSpan.FromDays(1), nameof(IdleTimeout));
        Check(TokenExpiryWarning, TimeSpan.Zero, TimeSpan.FromHours(1), nameof(TokenExpiryWarning));
        Check(MaxOutboundQueueBytes, 64 * 1024, 1024 * 1024 * 1024, nameof(MaxOutboundQueueBytes));
        if (StreamLagBytes != 0)
        {
            Check(StreamLagBytes, 1024, MaxOutboundQueueBytes / 2, nameof(StreamLagBytes));
        }
        Check(RetentionMessagesPerTopic, 1, int.MaxValue, nameof(RetentionMessagesPerTopic));
        Check(RetentionMaxAge, TimeSpan.FromSeconds(1), TimeSpan.FromDays(36500), nameof(RetentionMaxAge));
        Check(RetentionInterval, TimeSpan.FromMilliseconds(100), TimeSpan.FromDays(1), nameof(RetentionInterval));
        Check(ReplayPageSize, 1, 100_000, nameof(ReplayPageSize));
        Check(HistoryMaxLimit, 1, 100_000, nameof(HistoryMaxLimit));
        Check(HistoryDefaultLimit, 1, HistoryMaxLimit, nameof(HistoryDefaultLimit));
        Check(AppendBatchMax, 1, 100_000, nameof(AppendBatchMax));
        Check(AppendQueueCapacity, 1, 10_000_000, nameof(AppendQueueCapacity));
        Check(PresenceBatchInterval, TimeSpan.Zero, TimeSpan.FromSeconds(10), nameof(PresenceBatchInterval));
        Check(MaxPresenceSummaryLength, 1, 4096, nameof(MaxPresenceSummaryLength));
    }

    private static void Check(int value, int min, int max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be between {min} and {max}");
        }
    }

    private static void Check(TimeSpan value, TimeSpan min, TimeSpan max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be between {min} and {max}");
        }
    }
}
