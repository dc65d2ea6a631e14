using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Parley.Hub.Auth;
using Parley.Hub.Channels;
using Parley.Protocol;

namespace Parley.Hub.Connections;

/// <summary>
/// One socket's session in the hub: its principal, joined topics, rate limit and dispatch of inbound
/// Phoenix messages (docs/protocol.md §Flows). The transport calls <see cref="HandleAsync"/> for each
/// message in order, one at a time, and <see cref="OnTransportClosed"/> once at the end.
/// </summary>
public sealed class HubConnection
{
    private readonly ParleyHub _hub;
    private readonly IConnectionTransport _transport;
    private readonly JoinedTopics _joined = new();
    private TokenBucket _bucket;
    private int _rejections;
    private long _rejectionWindowStart;
    private long _lastInboundTicks;

    private ConnectionPrincipal _principal;
    private long _expiryWarnedFor;

    internal HubConnection(ParleyHub hub, string id, ConnectionPrincipal principal, IConnectionTransport transport, string clientKind)
    {
        _hub = hub;
        Id = id;
        ClientKind = clientKind;
        _principal = principal;
        ConnectedAt = hub.Time.GetUtcNow();
        _transport = transport;
        _bucket = new TokenBucket(hub.Options.PushesPerSecond, hub.Options.PushBurst);
        _lastInboundTicks = Environment.TickCount64;
        _rejectionWindowStart = Stopwatch.GetTimestamp();
    }

    /// <summary>The connection id (unique within this hub run).</summary>
    public string Id { get; }

    /// <summary>Who is on this connection. Replaced (never by another name) when the client refreshes its credential in-band or an admin changes its role.</summary>
    public ConnectionPrincipal Principal => Volatile.Read(ref _principal);

    /// <summary>When the socket was attached.</summary>
    public DateTimeOffset ConnectedAt { get; }

    /// <summary>What kind of client this is (presence <c>client</c>; one of <see cref="Presence.PresenceValues.Clients"/>).</summary>
    public string ClientKind { get; }

    // The user's shared presence settings; attached on the first track or update (on the read loop).
    internal Presence.PresenceUser? PresenceUser { get; set; }

    /// <summary>
    /// Swaps the principal for a refreshed one of the same name (a new expiry, a new role). Returns
    /// false, changing nothing, when the name differs: a socket never changes who it is.
    /// </summary>
    public bool ReplacePrincipal(ConnectionPrincipal principal)
    {
        ArgumentNullException.ThrowIfNull(principal);
        if (!string.Equals(principal.Name, Principal.Name, StringComparison.Ordinal))
        {
            return false;
        }
        Volatile.Write(ref _principal, principal);
        return true;
    }

    /// <summary>True the first time it is called for a given expiry (so the warning goes out once per credential).</summary>
    internal bool MarkExpiryWarned(long expiresAtMs) => Interlocked.Exchange(ref _expiryWarnedFor, expiresAtMs) != expiresAtMs;

    /// <summary>The hub this connection belongs to.</summary>
    public ParleyHub Hub => _hub;

    /// <summary>Topics currently joined.</summary>
    public int JoinedCount
    {
        get
        {
            lock (_joined)
            {
                return _joined.Count;
            }
        }
    }

    /// <summary>Bytes of live frames a joining subscriber may buffer while its replay is sent before it counts as a slow consumer.</summary>
    internal int MaxBufferedBytesDuringReplay => _hub.Options.MaxOutboundQueueBytes;

    /// <summary>Milliseconds since anything arrived from the client.</summary>
    public long IdleMilliseconds => Environment.TickCount64 - Volatile.Read(ref _lastInboundTicks);

    /// <summary>Queues a frame without waiting (see <see cref="IConnectionTransport.TrySend"/>).</summary>
    public bool Send(byte[] frame) => _transport.TrySend(frame);

    /// <summary>Queues several frames as one unit (see <see cref="IConnectionTransport.TrySend(FrameBatch)"/>).</summary>
    public bool Send(FrameBatch batch) => _transport.TrySend(batch);

    /// <summary>Queues a frame, waiting for room (replays).</summary>
    public ValueTask<bool> SendAsync(byte[] frame, CancellationToken cancellationToken) => _transport.SendAsync(frame, cancellationToken);

    /// <summary>Closes the socket with a code and reason (docs/protocol.md §Close codes).</summary>
    public void Close(ushort code, string reason) => _transport.Close(code, reason);

    /// <summary>True once the socket is closing.</summary>
    public bool IsClosing => _transport.IsClosing;

    /// <summary>Bytes queued for this socket and not yet written (see <see cref="ResyncingSender"/>).</summary>
    public long QueuedBytes => _transport.QueuedBytes;

    internal void CloseSlowConsumer()
    {
        if (!_transport.IsClosing)
        {
            _hub.Metrics.SlowConsumer();
            _transport.Close(CloseStatus.SlowConsumer, "slow consumer");
        }
    }

    /// <summary>Records inbound activity (any frame, including pings) for the idle timeout.</summary>
    public void Touch() => Volatile.Write(ref _lastInboundTicks, Environment.TickCount64);

    /// <summary>Handles one inbound message. Never throws for bad client input: every case gets a reply or a close.</summary>
    public async ValueTask HandleAsync(PhoenixMessage message, CancellationToken cancellationToken)
    {
        if (message.Topic == PhoenixEvents.PhoenixTopic)
        {
            if (message.Event == PhoenixEvents.Heartbeat)
            {
                Send(WireFrames.ReplyEmpty(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk));
            }
            else
            {
                ReplyError(message, ErrorReasons.UnknownEvent, $"the phoenix topic only takes heartbeat, not '{message.Event}'");
            }
            return;
        }

        // Leaves are never refused: phoenix.js would stay "leaving" forever on an error reply. A channel's bulk
        // pushes (a terminal owner's recorded bytes) are paced by the channel, not by the push rate.
        if (message.Event != PhoenixEvents.Leave && !IsBulkPush(message) && !_bucket.TryTake(out var retryAfterMs))
        {
            RejectRateLimited(message, retryAfterMs);
            return;
        }
        _hub.Metrics.Pushed();

        switch (message.Event)
        {
            case PhoenixEvents.Join:
                await JoinAsync(message, cancellationToken);
                return;
            case PhoenixEvents.Leave:
                Leave(message);
                return;
        }

        (IChannelHandler Handler, Subscriber Subscriber) joined;
        lock (_joined)
        {
            // A push for a channel instance that is gone (the client raced a rejoin) is refused like Phoenix does.
            if (!_joined.TryGet(message.Topic, out joined) || (message.JoinRef is not null && message.JoinRef != joined.Subscriber.JoinRef))
            {
                Send(WireFrames.ErrorReply(null, message.Ref, message.Topic, ErrorReasons.UnmatchedTopic));
                return;
            }
        }
        if (_hub.IsShuttingDown)
        {
            ReplyError(message, ErrorReasons.ShuttingDown);
            return;
        }
        try
        {
            await joined.Handler.HandleAsync(new ChannelRequest(this, message), joined.Subscriber, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            HubLog.HandlerFailed(_hub.Logger, message.Topic, message.Event, Id, ex);
            ReplyError(message, ErrorReasons.InternalError);
        }
    }

    // Only binary pushes can be bulk data, so the JSON pushes on the hot path never take the lookup.
    private bool IsBulkPush(PhoenixMessage message)
    {
        if (!message.IsBinary || message.Event == PhoenixEvents.Join)
        {
            return false;
        }
        lock (_joined)
        {
            return _joined.TryGet(message.Topic, out var joined) && joined.Handler.IsBulkPush(joined.Subscriber, message);
        }
    }

    private async ValueTask JoinAsync(PhoenixMessage message, CancellationToken cancellationToken)
    {
        var topic = message.Topic;
        if (_hub.IsShuttingDown)
        {
            ReplyError(message, ErrorReasons.ShuttingDown);
            return;
        }
        var handler = _hub.Router.Match(topic);
        if (handler is null)
        {
            Send(WireFrames.ErrorReply(null, message.Ref, topic, ErrorReasons.UnmatchedTopic));
            return;
        }

        // A duplicate join closes the old instance first (Phoenix semantics).
        RemoveSubscription(topic, sendClose: true);

        if (JoinedCount >= _hub.Options.MaxTopicsPerConnection)
        {
            ReplyError(message, ErrorReasons.TooManyTopics, $"at most {_hub.Options.MaxTopicsPerConnection} topics per socket");
            return;
        }
        var denial = await _hub.JoinAuthorizer.AuthorizeJoinAsync(Principal, topic, message.Payload, cancellationToken);
        if (denial is not null)
        {
            ReplyError(message, denial);
            return;
        }

        Subscriber? subscriber;
        try
        {
            subscriber = await handler.JoinAsync(new ChannelRequest(this, message), cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            HubLog.JoinCrashed(_hub.Logger, topic, Id, ex);
            Send(WireFrames.ErrorReply(message.JoinRef, message.Ref, topic, ErrorReasons.JoinCrashed));
            return;
        }
        if (subscriber is null)
        {
            return;
        }
        lock (_joined)
        {
            _joined.Set(topic, handler, subscriber);
        }
        _hub.Metrics.Joined();
    }

    private void Leave(PhoenixMessage message)
    {
        (IChannelHandler Handler, Subscriber Subscriber) joined;
        lock (_joined)
        {
            if (!_joined.TryGet(message.Topic, out joined))
            {
                Send(WireFrames.ReplyEmpty(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk));
                return;
            }
            if (message.JoinRef is not null && message.JoinRef != joined.Subscriber.JoinRef)
            {
                return; // the client raced a server close; Phoenix sends no reply
            }
            _joined.Remove(message.Topic, out _);
        }
        Detach(joined.Handler, joined.Subscriber);
        Send(WireFrames.ReplyEmpty(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk));
        var joinRef = joined.Subscriber.JoinRef;
        Send(WireFrames.EmptyEvent(joinRef, joinRef, message.Topic, PhoenixEvents.Close));
    }

    /// <summary>Removes a topic's subscription; with <paramref name="sendClose"/> tells the client with <c>phx_close</c>.</summary>
    public bool RemoveSubscription(string topic, bool sendClose)
    {
        (IChannelHandler Handler, Subscriber Subscriber) joined;
        lock (_joined)
        {
            if (!_joined.Remove(topic, out joined))
            {
                return false;
            }
        }
        Detach(joined.Handler, joined.Subscriber);
        if (sendClose)
        {
            var joinRef = joined.Subscriber.JoinRef;
            Send(WireFrames.EmptyEvent(joinRef, joinRef, topic, PhoenixEvents.Close));
        }
        return true;
    }

    /// <summary>Called once by the transport when the socket is gone: leaves every topic.</summary>
    public void OnTransportClosed()
    {
        List<(IChannelHandler Handler, Subscriber Subscriber)> all;
        lock (_joined)
        {
            all = _joined.TakeAll();
        }
        foreach (var (handler, subscriber) in all)
        {
            Detach(handler, subscriber);
        }
        _hub.Presence.ConnectionClosed(this);
        _hub.Detach(this);
    }

    // Every way a subscription ends comes through here. The topic forgets the subscriber first, so its
    // own presence leave goes only to the others; the untrack happens exactly once.
    private void Detach(IChannelHandler handler, Subscriber subscriber)
    {
        subscriber.Topic.Unsubscribe(subscriber);
        _hub.Presence.Untrack(subscriber);
        handler.OnLeft(subscriber);
    }

    private void RejectRateLimited(PhoenixMessage message, int retryAfterMs)
    {
        _hub.Metrics.RateLimited();
        var now = Stopwatch.GetTimestamp();
        if (Stopwatch.GetElapsedTime(_rejectionWindowStart, now) > _hub.Options.RateLimitWindow)
        {
            _rejectionWindowStart = now;
            _rejections = 0;
        }
        if (++_rejections > _hub.Options.RateLimitRejectionsBeforeClose)
        {
            _hub.Metrics.RateLimitClose();
            HubLog.RateLimitClose(_hub.Logger, Id);
            Close(CloseStatus.PolicyViolation, "rate limit exceeded repeatedly");
            return;
        }
        Send(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusError, retryAfterMs, static (w, ms) =>
        {
            w.WriteStartObject();
            w.WriteString("reason"u8, ErrorReasons.RateLimited);
            w.WriteNumber("retry_after_ms"u8, ms);
            w.WriteEndObject();
        }));
    }

    /// <summary>Replies <c>ok</c> with a response written by <paramref name="writeResponse"/>.</summary>
    public void ReplyOk<TState>(PhoenixMessage message, TState state, Action<Utf8JsonWriter, TState> writeResponse) =>
        Send(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusOk, state, writeResponse));

    /// <summary>Replies <c>error</c> with <c>{reason, detail?}</c>.</summary>
    public void ReplyError(PhoenixMessage message, string reason, string? detail = null) =>
        Send(WireFrames.Reply(message.JoinRef, message.Ref, message.Topic, PhoenixEvents.StatusError, (reason, detail), static (w, s) =>
        {
            w.WriteStartObject();
            w.WriteString("reason"u8, s.reason);
            if (s.detail is not null)
            {
                w.WriteString("detail"u8, s.detail);
            }
            w.WriteEndObject();
        }));
}
