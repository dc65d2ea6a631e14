using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Parley.Protocol;

namespace Parley.Client;

/// <summary>
/// One Phoenix V2 socket to a Parley hub, shared by any number of topics. It keeps its place: on every
/// redial it rejoins each topic with <c>since</c> = the last offset it delivered, and drops replayed
/// offsets it already delivered, so the application sees every <c>msg</c> exactly once across
/// disconnects and hub restarts (or a <see cref="Rejoined"/> event with <c>Recovered = false</c>).
/// Pushes wait until the session is ready (connected and every topic rejoined) and return the reply
/// as a value; a drop fails them at once. Incoming messages go to a bounded <see cref="Messages"/>
/// reader: a slow application loses the newest messages (counted in <see cref="DroppedMessages"/>),
/// never the heartbeats.
/// </summary>
public sealed class ParleyClient : IAsyncDisposable
{
    private const string Heartbeat = "heartbeat";
    private readonly ParleyClientOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<ClientMessage> _messages;
    private readonly Channel<ClientEvent> _events = Channel.CreateUnbounded<ClientEvent>();
    private readonly ConcurrentDictionary<string, TopicState> _topics = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource<PushReply>> _pending = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private TaskCompletionSource _ready = NewGate();
    private ClientWebSocket? _socket;
    // hub:lobby, joined by the client itself when it has a credential: the hub warns there before the
    // credential expires, and token.refresh there extends the socket without a redial.
    private const string Lobby = "hub:lobby";
    private readonly TopicState _lobby = new(null, -1) { FirstJoinPending = false };
    private int _refreshing;
    // The credential the live socket carries, and when this machine got it (the refresh timer counts the
    // token's lifetime from then, so a skewed clock cannot make it refresh too early or too late).
    private Credential? _credential;

    private sealed record Credential(string Token, DateTimeOffset ReceivedAt);
    private Task? _run;
    private long _nextRef;
    private long _dropped;

    private sealed class TopicState(JsonObject? joinParams, long lastOffset)
    {
        public JsonObject? JoinParams { get; } = joinParams;
        public long LastOffset = lastOffset; // -1: live only until the first message
        public string? JoinRef;
        public volatile bool FirstJoinPending = true; // JoinAsync sends the first join itself
    }

    public ParleyClient(ParleyClientOptions options, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger ?? NullLogger.Instance;
        _messages = Channel.CreateBounded<ClientMessage>(
            new BoundedChannelOptions(options.MessageBuffer) { FullMode = BoundedChannelFullMode.DropWrite, SingleWriter = true },
            _ => Interlocked.Increment(ref _dropped));
    }

    /// <summary>Messages from joined topics, in arrival order.</summary>
    public ChannelReader<ClientMessage> Messages => _messages.Reader;

    /// <summary>Connection events: <see cref="Ready"/>, <see cref="Reconnecting"/>, <see cref="Rejoined"/>, <see cref="TokenRefreshing"/>, <see cref="AuthFailed"/>.</summary>
    public ChannelReader<ClientEvent> Events => _events.Reader;

    /// <summary>Messages dropped because the application did not read <see cref="Messages"/> fast enough.</summary>
    public long DroppedMessages => Interlocked.Read(ref _dropped);

    /// <summary>True while the session is ready.</summary>
    public bool IsReady => _ready.Task.IsCompletedSuccessfully;

    /// <summary>Starts connecting in the background; returns when the first session is ready (bounded by the connect timeout) or fails.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        _run ??= Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
        await WaitReadyAsync(_options.ConnectTimeout + _options.ReplyTimeout, cancellationToken);
    }

    /// <summary>
    /// Joins <paramref name="topic"/> (kept across reconnects). <paramref name="since"/>: replay from this
    /// offset (0 = the whole retained history); null = live only. Returns the hub's reply.
    /// </summary>
    public async Task<PushReply> JoinAsync(string topic, long? since = null, JsonObject? joinParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        var state = new TopicState(joinParams, since ?? -1);
        if (!_topics.TryAdd(topic, state))
        {
            throw new InvalidOperationException($"{topic} is already joined on this client");
        }
        try
        {
            await WaitReadyAsync(_options.ReplyTimeout, cancellationToken);
            var reply = await SendJoinAsync(topic, state, cancellationToken);
            if (!reply.IsOk)
            {
                _topics.TryRemove(topic, out _);
            }
            return reply;
        }
        catch
        {
            _topics.TryRemove(topic, out _);
            throw;
        }
        finally
        {
            state.FirstJoinPending = false;
        }
    }

    /// <summary>
    /// Leaves <paramref name="topic"/>: it is no longer rejoined after a reconnect, and the hub is told
    /// (<c>phx_leave</c>) when the session is up. Returns false when the topic was not joined.
    /// </summary>
    public async Task<bool> LeaveAsync(string topic, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topic);
        if (!_topics.TryRemove(topic, out var state))
        {
            return false;
        }
        if (IsReady && state.JoinRef is { } joinRef)
        {
            try
            {
                await RequestAsync(joinRef, topic, PhoenixEvents.Leave, new JsonObject(), cancellationToken);
            }
            catch (ParleyClientException)
            {
                // The socket dropped meanwhile: the topic is gone from the rejoin list, so the new session never has it.
            }
        }
        return true;
    }

    /// <summary>Pushes an event to a joined topic and returns the reply (an error reply is a value).</summary>
    public async Task<PushReply> PushAsync(string topic, string @event, object payload, CancellationToken cancellationToken = default)
    {
        await WaitReadyAsync(_options.ReplyTimeout, cancellationToken);
        var joinRef = _topics.TryGetValue(topic, out var state) ? state.JoinRef : null;
        return await RequestAsync(joinRef, topic, @event, JsonSerializer.SerializeToNode(payload), cancellationToken);
    }

    /// <summary>Pushes raw bytes as a Phoenix V2 binary push (a terminal owner's <c>record_output</c>) and returns the reply.</summary>
    public async Task<PushReply> PushBinaryAsync(string topic, string @event, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        await WaitReadyAsync(_options.ReplyTimeout, cancellationToken);
        var joinRef = _topics.TryGetValue(topic, out var state) ? state.JoinRef : null;
        var @ref = NextRef();
        return await SendAwaitingReplyAsync(@ref, topic, @event, PhoenixBinaryCodec.EncodeClientPush(joinRef, @ref, topic, @event, payload.Span), WebSocketMessageType.Binary, cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_socket is { State: WebSocketState.Open } socket)
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "client closed", timeout.Token);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
        if (_run is not null)
        {
            try
            {
                await _run;
            }
            catch (OperationCanceledException)
            {
            }
        }
        FailPending("the client was disposed");
        _messages.Writer.TryComplete();
        _events.Writer.TryComplete();
        _stop.Dispose();
    }

    // ---- the connection loop ----

    private async Task RunAsync(CancellationToken stop)
    {
        var attempt = 0;
        var forceRefresh = false;
        while (!stop.IsCancellationRequested)
        {
            var upSince = (DateTimeOffset?)null;
            string reason;
            try
            {
                var token = _options.Credentials is null ? null : await _options.Credentials(new CredentialRequest(forceRefresh), stop);
                forceRefresh = false;
                using var socket = await DialAsync(token, stop);
                Volatile.Write(ref _credential, token is null ? null : new Credential(token, DateTimeOffset.UtcNow));
                _socket = socket;
                upSince = DateTimeOffset.UtcNow;
                using var session = CancellationTokenSource.CreateLinkedTokenSource(stop);
                var receive = ReceiveLoopAsync(socket, session.Token);
                var heartbeat = HeartbeatLoopAsync(socket, session.Token);
                await RejoinAllAsync(session.Token);
                if (_options.Credentials is not null && !_topics.ContainsKey(Lobby))
                {
                    await SendJoinAsync(Lobby, _lobby, session.Token); // an error reply only means no in-band refresh
                }
                _ready.TrySetResult();
                _events.Writer.TryWrite(new Ready());
                var refreshTimer = RefreshTimerAsync(session.Token);
                var (code, description) = await receive;
                await session.CancelAsync();
                await heartbeat;
                await refreshTimer;
                reason = code is null ? "connection lost" : string.Create(CultureInfo.InvariantCulture, $"closed with {code} {description}");
                if (code is { } closeCode && MustStopAfterClose(closeCode, description))
                {
                    return;
                }
                forceRefresh = code == CloseStatus.TokenExpired;
            }
            catch (CredentialUnavailableException ex)
            {
                Stop("auth_failed: " + ex.Message);
                return;
            }
            catch (UpgradeRefusedException ex) when (ex.Status == HttpStatusCode.Forbidden || (ex.Status == HttpStatusCode.Unauthorized && _options.Credentials is null))
            {
                Stop($"auth_failed: the hub refused the credential ({(int)ex.Status})");
                return;
            }
            catch (UpgradeRefusedException ex) when (ex.Status == HttpStatusCode.Unauthorized)
            {
                // Expired or refused: ask for a fresh credential once; a second 401 in a row backs off like any failure.
                reason = "credential refused (401)";
                if (!forceRefresh)
                {
                    _events.Writer.TryWrite(new TokenRefreshing());
                    forceRefresh = true;
                    continue;
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ParleyClientException or HttpRequestException or UpgradeRefusedException)
            {
                reason = SecretRedactor.Redact(ex.Message);
            }
            finally
            {
                _socket = null;
                if (_ready.Task.IsCompleted)
                {
                    _ready = NewGate();
                }
                FailPending("connection lost");
            }
            if (upSince is { } up && DateTimeOffset.UtcNow - up >= _options.StableAfter)
            {
                attempt = 0;
            }
            var delay = Jitter(_options.Backoff[Math.Min(attempt, _options.Backoff.Count - 1)]);
            attempt++;
            _events.Writer.TryWrite(new Reconnecting(attempt, DateTimeOffset.UtcNow + delay, reason));
            ClientLog.Reconnecting(_logger, attempt, delay.TotalSeconds, reason);
            try
            {
                await Task.Delay(delay, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <returns>true when the client must stop.</returns>
    private bool MustStopAfterClose(ushort code, string description)
    {
        if (code == CloseStatus.Normal && _stop.IsCancellationRequested)
        {
            return true;
        }
        if (code == CloseStatus.TokenExpired)
        {
            _events.Writer.TryWrite(new TokenRefreshing());
            return false;
        }
        if (CloseStatus.AdviceFor(code) == CloseAdvice.Stop)
        {
            Stop(code == CloseStatus.Forbidden ? $"auth_failed: {description}" : $"stopped: the hub closed with {code} {description}");
            return true;
        }
        return false;
    }

    private void Stop(string reason)
    {
        ClientLog.Stopped(_logger, SecretRedactor.Redact(reason));
        _events.Writer.TryWrite(new AuthFailed(SecretRedactor.Redact(reason)));
        _ready.TrySetException(new ParleyClientException(reason));
    }

    private async Task<ClientWebSocket> DialAsync(string? token, CancellationToken stop)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.KeepAliveInterval = TimeSpan.Zero; // Phoenix heartbeats do this job
        socket.Options.AddSubProtocol("phoenix");
        if (!string.IsNullOrEmpty(token))
        {
            socket.Options.AddSubProtocol("base64url.bearer.phx." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(token)));
        }
        var scheme = _options.Server.Scheme == "https" ? "wss" : "ws";
        var kind = _options.ClientKind is { } k ? "&client=" + Uri.EscapeDataString(k) : "";
        var uri = new Uri($"{scheme}://{_options.Server.Authority}/socket/websocket?vsn=2.0.0{kind}");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop);
        timeout.CancelAfter(_options.ConnectTimeout);
        try
        {
            await socket.ConnectAsync(uri, timeout.Token);
            return socket;
        }
        catch (WebSocketException) when (socket.HttpStatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            var status = socket.HttpStatusCode;
            socket.Dispose();
            throw new UpgradeRefusedException(status);
        }
        catch (OperationCanceledException) when (!stop.IsCancellationRequested)
        {
            socket.Dispose();
            throw new ParleyClientException($"connecting to {uri} took longer than {_options.ConnectTimeout.TotalSeconds:0.#} s");
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private sealed class UpgradeRefusedException(HttpStatusCode status) : Exception($"the hub refused the upgrade with {(int)status}")
    {
        public HttpStatusCode Status { get; } = status;
    }

    // ---- joins ----

    private async Task RejoinAllAsync(CancellationToken cancellationToken)
    {
        foreach (var (topic, state) in _topics)
        {
            if (state.FirstJoinPending)
            {
                continue; // JoinAsync is about to send this topic's first join itself
            }
            var reply = await SendJoinAsync(topic, state, cancellationToken);
            var recovered = reply.IsOk && reply.Response.ValueKind == JsonValueKind.Object
                && (!reply.Response.TryGetProperty("recovered", out var r) || r.ValueKind != JsonValueKind.False);
            _events.Writer.TryWrite(new Rejoined(topic, recovered, reply.Response));
            if (!reply.IsOk)
            {
                _topics.TryRemove(topic, out _);
            }
        }
    }

    private Task<PushReply> SendJoinAsync(string topic, TopicState state, CancellationToken cancellationToken)
    {
        var payload = state.JoinParams?.DeepClone().AsObject() ?? [];
        var since = Interlocked.Read(ref state.LastOffset);
        if (since >= 0)
        {
            payload.Remove("since_ms"); // once anything was delivered, the offset is the exact place to resume
            payload["since"] = since;
        }
        var joinRef = NextRef();
        state.JoinRef = joinRef;
        return RequestAsync(joinRef, topic, PhoenixEvents.Join, payload, cancellationToken, joinRef);
    }

    // ---- requests and replies ----

    private async Task<PushReply> RequestAsync(string? joinRef, string topic, string @event, JsonNode? payload, CancellationToken cancellationToken, string? @ref = null)
    {
        @ref ??= NextRef();
        var frame = new JsonArray(joinRef, @ref, topic, @event, payload ?? new JsonObject()).ToJsonString();
        return await SendAwaitingReplyAsync(@ref, topic, @event, Encoding.UTF8.GetBytes(frame), WebSocketMessageType.Text, cancellationToken);
    }

    // Sends a frame that carries `ref` and waits for the hub's reply to it (JSON or binary), at most ReplyTimeout.
    private async Task<PushReply> SendAwaitingReplyAsync(string @ref, string topic, string @event, byte[] frame, WebSocketMessageType type, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource<PushReply>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[@ref] = waiter;
        try
        {
            await SendAsync(frame, type, cancellationToken);
            return await waiter.Task.WaitAsync(_options.ReplyTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new ParleyClientException($"no reply to {@event} on {topic} within {_options.ReplyTimeout.TotalSeconds:0.#} s");
        }
        finally
        {
            _pending.TryRemove(@ref, out _);
        }
    }

    private Task SendAsync(string frame, CancellationToken cancellationToken) =>
        SendAsync(Encoding.UTF8.GetBytes(frame), WebSocketMessageType.Text, cancellationToken);

    private async Task SendAsync(byte[] frame, WebSocketMessageType type, CancellationToken cancellationToken)
    {
        var socket = _socket ?? throw new ParleyClientException("connection lost");
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            await socket.SendAsync(frame, type, true, cancellationToken);
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or IOException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            // A socket aborted under a send throws OperationCanceledException: that is a lost connection, not the
            // caller's cancellation, and callers that retry on ParleyClientException must see it as one.
            throw new ParleyClientException("connection lost");
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private void FailPending(string reason)
    {
        foreach (var (@ref, waiter) in _pending)
        {
            if (_pending.TryRemove(@ref, out _))
            {
                waiter.TrySetException(new ParleyClientException(reason));
            }
        }
    }

    private async Task WaitReadyAsync(TimeSpan bound, CancellationToken cancellationToken)
    {
        try
        {
            await _ready.Task.WaitAsync(bound, cancellationToken);
        }
        catch (TimeoutException)
        {
            throw new ParleyClientException($"the session was not ready within {bound.TotalSeconds:0.#} s (is the hub reachable?)");
        }
    }

    // ---- receiving ----

    private async Task<(ushort? Code, string Description)> ReceiveLoopAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        using var message = new MemoryStream();
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    return ((ushort?)socket.CloseStatus, socket.CloseStatusDescription ?? "");
                }
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage)
                {
                    continue;
                }
                if (result.MessageType == WebSocketMessageType.Text)
                {
                    Dispatch(message.GetBuffer().AsMemory(0, (int)message.Length));
                }
                else if (result.MessageType == WebSocketMessageType.Binary)
                {
                    DispatchBinary(message.GetBuffer().AsSpan(0, (int)message.Length));
                }
                message.SetLength(0);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or ObjectDisposedException)
        {
            return (null, "");
        }
    }

    // Binary replies (fetch_output) and broadcasts (a terminal's output): the payload is raw bytes.
    private void DispatchBinary(ReadOnlySpan<byte> frame)
    {
        if (!PhoenixBinaryCodec.TryParseServerFrame(frame, out var kind, out _, out var @ref, out var topic, out var eventOrStatus, out var start))
        {
            return;
        }
        var payload = frame[start..].ToArray();
        if (kind == PhoenixBinaryCodec.KindReply)
        {
            if (@ref is not null && _pending.TryGetValue(@ref, out var waiter))
            {
                waiter.TrySetResult(new PushReply(eventOrStatus, default) { Binary = payload });
            }
            return;
        }
        _messages.Writer.TryWrite(new ClientMessage(topic, eventOrStatus, default, null) { Binary = payload, IsBinary = true });
    }

    private void Dispatch(ReadOnlyMemory<byte> frame)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(frame);
        }
        catch (JsonException)
        {
            return;
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Array || root.GetArrayLength() != 5)
            {
                return;
            }
            var @ref = root[1].ValueKind == JsonValueKind.String ? root[1].GetString() : null;
            var topic = root[2].GetString() ?? "";
            var @event = root[3].GetString() ?? "";
            var payload = root[4].Clone();
            if (@event == PhoenixEvents.Reply)
            {
                if (@ref is not null && _pending.TryGetValue(@ref, out var waiter))
                {
                    var status = payload.TryGetProperty("status", out var s) ? s.GetString() ?? "error" : "error";
                    var response = payload.TryGetProperty("response", out var r) ? r : default;
                    waiter.TrySetResult(new PushReply(status, response));
                }
                return;
            }
            if (topic == Lobby && @event == "token_expired")
            {
                _ = RefreshInBandAsync();
            }
            _topics.TryGetValue(topic, out var state);
            if (state is null && topic == Lobby)
            {
                return; // the client's own lobby subscription: nothing for the application
            }
            long? offset = null;
            if (@event == "msg" && payload.ValueKind == JsonValueKind.Object && payload.TryGetProperty("offset", out var o) && o.TryGetInt64(out var value))
            {
                offset = value;
                if (state is not null)
                {
                    // Exactly once: a replay after a reconnect may repeat what was already delivered.
                    if (value <= Interlocked.Read(ref state.LastOffset))
                    {
                        return;
                    }
                    Interlocked.Exchange(ref state.LastOffset, value);
                }
            }
            if (@event == PhoenixEvents.Close && state is not null && root[0].GetString() == state.JoinRef)
            {
                _topics.TryRemove(topic, out _);
            }
            _messages.Writer.TryWrite(new ClientMessage(topic, @event, payload, offset));
        }
    }

    // The hub says the credential expires soon: get a fresh one and hand it over on the live socket.
    // If that fails, drop the socket: the redial asks for a fresh credential (or ends in auth_failed).
    // Returns false when another refresh was already running (nothing was done here).
    private async Task<bool> RefreshInBandAsync()
    {
        if (_options.Credentials is null || Interlocked.Exchange(ref _refreshing, 1) == 1)
        {
            return false;
        }
        try
        {
            _events.Writer.TryWrite(new TokenRefreshing());
            var token = await _options.Credentials(new CredentialRequest(ForceRefresh: true), _stop.Token);
            var joinRef = _topics.TryGetValue(Lobby, out var joined) ? joined.JoinRef : _lobby.JoinRef;
            var reply = await RequestAsync(joinRef, Lobby, "token.refresh", new JsonObject { ["access_token"] = token }, _stop.Token);
            if (!reply.IsOk)
            {
                ClientLog.RefreshRefused(_logger, reply.Reason ?? "error");
                _socket?.Abort();
            }
            else if (token is not null)
            {
                Volatile.Write(ref _credential, new Credential(token, DateTimeOffset.UtcNow));
            }
        }
        catch (CredentialUnavailableException ex)
        {
            Stop("auth_failed: " + ex.Message);
            _socket?.Abort();
        }
        catch (Exception ex) when (ex is ParleyClientException or OperationCanceledException)
        {
            _socket?.Abort();
        }
        finally
        {
            Volatile.Write(ref _refreshing, 0);
        }
        return true;
    }

    // The client's own clock for in-band refresh: hubs that never warn (or a warning lost with a
    // dropped frame) must not cost a redial at expiry. A refresh that brought no later expiry is not
    // retried here: the hub's warning, or its 4401 close and the redial, take over.
    private async Task RefreshTimerAsync(CancellationToken cancellationToken)
    {
        if (_options.Credentials is null || _options.RefreshBeforeExpiry <= TimeSpan.Zero)
        {
            return;
        }
        var attempted = (Credential?)null;
        try
        {
            while (Volatile.Read(ref _credential) is { } credential && !ReferenceEquals(credential, attempted) && LifetimeOf(credential.Token) is { } lifetime)
            {
                var lead = TimeSpan.FromTicks(Math.Min(_options.RefreshBeforeExpiry.Ticks, lifetime.Ticks / 4));
                var wait = credential.ReceivedAt + lifetime - lead - DateTimeOffset.UtcNow;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }
                if (!ReferenceEquals(Volatile.Read(ref _credential), credential))
                {
                    continue; // refreshed meanwhile (the hub warned first): time the new one
                }
                if (await RefreshInBandAsync())
                {
                    attempted = credential; // done, refused or failed: the hub's warning or 4401 takes over from here
                }
                else
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken); // another refresh is running: look again
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // How long a JWT is valid (exp - iat, by the hub's clock); null for anything else, including API keys.
    private static TimeSpan? LifetimeOf(string token) =>
        ExpiryOf(token) is { } expiry && expiry.ExpiresAt > expiry.IssuedAt ? expiry.ExpiresAt - expiry.IssuedAt : null;

    /// <summary>The <c>iat</c> and <c>exp</c> claims of a JWT, unverified (the hub verifies); null for anything else.</summary>
    private static (DateTimeOffset IssuedAt, DateTimeOffset ExpiresAt)? ExpiryOf(string credential)
    {
        var parts = credential.Split('.');
        if (parts.Length != 3 || !Base64Url.IsValid(parts[1]))
        {
            return null;
        }
        try
        {
            using var claims = JsonDocument.Parse(Base64Url.DecodeFromChars(parts[1]));
            if (claims.RootElement.ValueKind != JsonValueKind.Object
                || !claims.RootElement.TryGetProperty("exp", out var exp) || exp.ValueKind != JsonValueKind.Number || !exp.TryGetInt64(out var expSeconds)
                || !claims.RootElement.TryGetProperty("iat", out var iat) || iat.ValueKind != JsonValueKind.Number || !iat.TryGetInt64(out var iatSeconds))
            {
                return null;
            }
            var expiresAt = DateTimeOffset.FromUnixTimeSeconds(expSeconds);
            var issuedAt = DateTimeOffset.FromUnixTimeSeconds(iatSeconds);
            return (issuedAt, expiresAt);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    // ---- heartbeats ----

    private async Task HeartbeatLoopAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        Task<PushReply>? outstanding = null;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                if (outstanding is { IsCompleted: false })
                {
                    ClientLog.HeartbeatMissed(_logger);
                    socket.Abort(); // no answer within an interval: the socket is dead
                    return;
                }
                outstanding = RequestAsync(null, PhoenixEvents.PhoenixTopic, Heartbeat, new JsonObject(), cancellationToken);
                _ = outstanding.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private string NextRef() => Interlocked.Increment(ref _nextRef).ToString(CultureInfo.InvariantCulture);

    private static TaskCompletionSource NewGate() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static TimeSpan Jitter(TimeSpan delay) => delay * (0.8 + (Random.Shared.NextDouble() * 0.4));
}

internal static partial class ClientLog
{
    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Parley connection lost ({Reason}); reconnect attempt {Attempt} in {DelaySeconds:0.0} s")]
    public static partial void Reconnecting(ILogger logger, int attempt, double delaySeconds, string reason);

    [LoggerMessage(EventId = 602, Level = LogLevel.Warning, Message = "Parley client stopped: {Reason}")]
    public static partial void Stopped(ILogger logger, string reason);

    [LoggerMessage(EventId = 603, Level = LogLevel.Warning, Message = "Parley heartbeat unanswered for an interval; dropping the socket")]
    public static partial void HeartbeatMissed(ILogger logger);

    [LoggerMessage(EventId = 604, Level = LogLevel.Warning, Message = "Parley in-band token refresh refused ({Reason}); redialing with a fresh credential")]
    public static partial void RefreshRefused(ILogger logger, string reason);
}
