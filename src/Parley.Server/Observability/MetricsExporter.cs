using Parley.Hub;
using Prometheus;

namespace Parley.Server.Observability;

/// <summary>
/// <c>GET /metrics</c> in Prometheus text format. Hot-path counters live in <see cref="HubMetrics"/> as
/// plain longs and are copied into the registry just before each scrape.
/// </summary>
internal sealed class MetricsExporter
{
    private readonly CollectorRegistry _registry = Metrics.NewCustomRegistry();

    public MetricsExporter(ParleyHub hub, Streams.PlainStreamRegistry plainStreams)
    {
        var factory = Metrics.WithCustomRegistry(_registry);
        var connections = factory.CreateGauge("parley_connections", "Open WebSocket connections.");
        var topics = factory.CreateGauge("parley_topics", "Topics with live state.");
        var connectionsOpened = factory.CreateCounter("parley_connections_opened_total", "WebSocket connections accepted.");
        var joins = factory.CreateCounter("parley_joins_total", "Successful channel joins.");
        var pushes = factory.CreateCounter("parley_pushes_total", "Client pushes accepted by the rate limiter (joins, leaves and events; not heartbeats).");
        var stored = factory.CreateCounter("parley_messages_stored_total", "Messages committed to history.");
        var delivered = factory.CreateCounter("parley_messages_delivered_total", "Message frames queued to subscribers (live and replayed).");
        var bytesIn = factory.CreateCounter("parley_bytes_received_total", "WebSocket bytes received.");
        var bytesOut = factory.CreateCounter("parley_bytes_sent_total", "WebSocket bytes sent.");
        var slow = factory.CreateCounter("parley_slow_consumer_disconnects_total", "Connections closed because their outbound queue overflowed (4008).");
        var rateLimited = factory.CreateCounter("parley_rate_limited_pushes_total", "Pushes answered with rate_limited.");
        var rateLimitCloses = factory.CreateCounter("parley_rate_limit_disconnects_total", "Connections closed for sustained rate-limit abuse (1008).");
        var protocolErrors = factory.CreateCounter("parley_protocol_error_disconnects_total", "Connections closed for malformed or oversized frames (1002/1007/1009).");
        var idle = factory.CreateCounter("parley_idle_disconnects_total", "Connections closed by the idle timeout (4000).");
        var appendQueue = factory.CreateGauge("parley_append_queue", "Pushes waiting to be committed.");
        var resident = factory.CreateGauge("process_resident_memory_bytes", "Resident memory of the hub process.");
        var heap = factory.CreateGauge("dotnet_gc_heap_bytes", "Managed heap size after the last collection.");
        var commit = factory.CreateHistogram("parley_store_commit_seconds", "Duration of one history store commit (a batch of appends).",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });
        hub.Metrics.CommitObserved += commit.Observe;
        var streams = factory.CreateGauge("parley_plain_streams", "Open plain JSON WebSocket streams (/ws/...).");
        var streamsOpened = factory.CreateCounter("parley_plain_streams_opened_total", "Plain streams accepted.");
        var resyncs = factory.CreateCounter("parley_plain_stream_resyncs_total", "Times a plain stream consumer fell behind: its queued deltas were dropped and it was sent a fresh snapshot.");
        var channelResyncs = factory.CreateCounter("parley_channel_resyncs_total", "Times a subscriber of a snapshot + delta topic (fleet:instances, logs:, events:messages, term:) fell behind: its deltas were dropped and it was sent a fresh snapshot.");
        var terminalDrops = factory.CreateCounter("parley_terminal_viewer_drops_total", "Terminal output frames not sent to a viewer that had fallen behind (it is sent resync and catches up with fetch_output).");
        var streamIdle = factory.CreateCounter("parley_plain_stream_idle_closes_total", "Plain streams closed with 1001 for sending no frame within the idle timeout.");
        var streamBytes = factory.CreateCounter("parley_plain_stream_bytes_sent_total", "Bytes written to plain streams.");

        _registry.AddBeforeCollectCallback(() =>
        {
            var m = hub.Metrics;
            connections.Set(m.Connections);
            topics.Set(hub.Topics.Count);
            connectionsOpened.IncTo(m.ConnectionsOpened);
            joins.IncTo(m.Joins);
            pushes.IncTo(m.Pushes);
            stored.IncTo(m.MessagesStored);
            delivered.IncTo(m.MessagesDelivered);
            bytesIn.IncTo(m.BytesIn);
            bytesOut.IncTo(m.BytesOut);
            slow.IncTo(m.SlowConsumerDisconnects);
            rateLimited.IncTo(m.RateLimitedPushes);
            rateLimitCloses.IncTo(m.RateLimitCloses);
            protocolErrors.IncTo(m.ProtocolErrorCloses);
            idle.IncTo(m.IdleTimeoutCloses);
            appendQueue.Set(hub.Appends.Pending);
            resident.Set(Environment.WorkingSet);
            heap.Set(GC.GetGCMemoryInfo().HeapSizeBytes);
            streams.Set(plainStreams.Count);
            streamsOpened.IncTo(plainStreams.Opened);
            resyncs.IncTo(plainStreams.Resyncs);
            channelResyncs.IncTo(m.StreamResyncs);
            terminalDrops.IncTo(m.TerminalViewerDrops);
            streamIdle.IncTo(plainStreams.IdleCloses);
            streamBytes.IncTo(plainStreams.BytesSent);
        });
    }

    public Task WriteAsync(Stream output, CancellationToken cancellationToken) =>
        _registry.CollectAndExportAsTextAsync(output, cancellationToken);
}
