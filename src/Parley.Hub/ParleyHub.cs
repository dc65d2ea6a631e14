using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Parley.Hub.Auth;
using Parley.Hub.Channels;
using Parley.Hub.Connections;
using Parley.Hub.History;
using Parley.Hub.Rooms;
using Parley.Protocol;

namespace Parley.Hub;

/// <summary>
/// The hub core: connections, channel routing, fan-out, the append pipeline and background upkeep
/// (retention, idle sweep). It knows nothing of Kestrel or SQL: transports attach connections through
/// <see cref="Attach"/>, stores plug in through <see cref="IHistoryStore"/>.
/// </summary>
public sealed class ParleyHub : IAsyncDisposable
{
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, HubConnection> _connections = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly string _runId = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(2));
    private long _nextConnectionId;
    private Task? _retentionLoop;
    private Task? _idleLoop;
    private volatile bool _shuttingDown;

    /// <summary>Creates a hub over <paramref name="history"/>. Call <see cref="Start"/> before attaching connections.</summary>
    public ParleyHub(
        HubOptions options,
        IHistoryStore history,
        ILoggerFactory? loggerFactory = null,
        IConnectAuthenticator? authenticator = null,
        IJoinAuthorizer? joinAuthorizer = null,
        TimeProvider? timeProvider = null)
    {
        options.Validate();
        Options = options;
        History = history;
        Logger = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Parley.Hub");
        Authenticator = authenticator ?? new AnonymousConnectAuthenticator();
        JoinAuthorizer = joinAuthorizer ?? new AllowAllJoinAuthorizer();
        Time = timeProvider ?? TimeProvider.System;
        Metrics = new HubMetrics();
        Topics = new TopicRegistry(Metrics);
        Appends = new AppendPipeline(history, Topics, Metrics, options, Logger);
        Router = new ChannelRouter();
        Router.Add(new RoomChannel(this));
        Lobby = new Parley.Hub.Lobby.LobbyChannel(this);
        Router.Add(Lobby);
        Presence = new Presence.PresenceTracker(this);
        Lobby.Register(Parley.Hub.Presence.PresenceTracker.UpdateEvent, Presence.HandleUpdateAsync);
        StartedAt = Time.GetUtcNow();
    }

    public HubOptions Options { get; }
    public IHistoryStore History { get; }
    public ILogger Logger { get; }
    public IConnectAuthenticator Authenticator { get; }
    public IJoinAuthorizer JoinAuthorizer { get; }
    public TimeProvider Time { get; }
    public HubMetrics Metrics { get; }
    public TopicRegistry Topics { get; }
    public AppendPipeline Appends { get; }
    public ChannelRouter Router { get; }

    /// <summary>The <c>hub:lobby</c> channel, where components register session commands.</summary>
    public Lobby.LobbyChannel Lobby { get; }

    /// <summary>Who is on which topic (presence_state, presence_diff; in memory only).</summary>
    public Presence.PresenceTracker Presence { get; }
    public DateTimeOffset StartedAt { get; }

    /// <summary>True once shutdown began: new joins and pushes get <c>shutting_down</c>.</summary>
    public bool IsShuttingDown => _shuttingDown;

    /// <summary>Open connections.</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Server time in milliseconds since the Unix epoch.</summary>
    public long NowMs => Time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Starts the append pipeline and the background loops.</summary>
    public void Start()
    {
        Appends.Start();
        _retentionLoop ??= Task.Run(() => RetentionLoopAsync(_stopping.Token));
        _idleLoop ??= Task.Run(() => IdleLoopAsync(_stopping.Token));
    }

    /// <summary>A new connection id, unique within this hub run.</summary>
    public string NewConnectionId() => $"{_runId}-{Interlocked.Increment(ref _nextConnectionId):x}";

    /// <summary>Registers an authenticated socket. The transport then feeds it messages.</summary>
    /// <param name="clientKind">The presence <c>client</c> of the socket (a connect param); null means <see cref="Parley.Hub.Presence.PresenceValues.DefaultClient"/>.</param>
    public HubConnection Attach(string connectionId, ConnectionPrincipal principal, IConnectionTransport transport, string? clientKind = null)
    {
        var connection = new HubConnection(this, connectionId, principal, transport,
            Parley.Hub.Presence.PresenceValues.ParseClient(clientKind) ?? Parley.Hub.Presence.PresenceValues.DefaultClient);
        _connections[connectionId] = connection;
        Metrics.ConnectionOpened();
        if (_shuttingDown)
        {
            transport.Close(CloseStatus.GoingAway, "server shutting down");
        }
        return connection;
    }

    /// <summary>Live sockets (a snapshot).</summary>
    public IReadOnlyList<HubConnection> Connections => [.. _connections.Values];

    /// <summary>
    /// Closes every live socket whose principal matches (revoked key, banned user, kick): takes effect
    /// at once. Returns how many were closed.
    /// </summary>
    public int CloseWhere(Func<ConnectionPrincipal, bool> match, ushort code, string reason)
    {
        ArgumentNullException.ThrowIfNull(match);
        var closed = 0;
        foreach (var connection in _connections.Values)
        {
            if (!connection.IsClosing && match(connection.Principal))
            {
                HubLog.ClosedByPolicy(Logger, connection.Id, connection.Principal.Name, code, reason);
                SafeClose(connection, code, reason);
                closed++;
            }
        }
        return closed;
    }

    /// <summary>Replaces the principal of every live socket that <paramref name="update"/> returns a new one for (a role change).</summary>
    public int UpdatePrincipals(Func<ConnectionPrincipal, ConnectionPrincipal?> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        var updated = 0;
        foreach (var connection in _connections.Values)
        {
            if (update(connection.Principal) is { } replacement && connection.ReplacePrincipal(replacement))
            {
                updated++;
            }
        }
        return updated;
    }

    internal void Detach(HubConnection connection)
    {
        if (_connections.TryRemove(connection.Id, out _))
        {
            Metrics.ConnectionClosed();
        }
    }

    /// <summary>
    /// Graceful shutdown: refuse new work, commit and acknowledge every queued append, then close every
    /// socket with 1001 "server shutting down" (after what is already queued to it).
    /// </summary>
    public async Task ShutdownAsync(TimeSpan? flushTimeout = null)
    {
        lock (_connections)
        {
            if (_shuttingDown)
            {
                return;
            }
            _shuttingDown = true;
        }
        HubLog.ShuttingDown(Logger, Appends.Pending, _connections.Count);
        await _stopping.CancelAsync();
        var timeout = flushTimeout ?? TimeSpan.FromSeconds(3);
        try
        {
            await Appends.CompleteAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            HubLog.ShutdownFlushTimedOut(Logger, timeout.TotalMilliseconds);
        }
        finally
        {
            foreach (var connection in _connections.Values)
            {
                SafeClose(connection, CloseStatus.GoingAway, "server shutting down");
            }
        }
    }

    private void SafeClose(HubConnection connection, ushort code, string reason)
    {
        try
        {
            connection.Close(code, reason);
        }
        catch (Exception ex)
        {
            HubLog.CloseFailed(Logger, connection.Id, ex);
        }
    }

    /// <summary>Runs retention once now (also runs every <see cref="HubOptions.RetentionInterval"/>).</summary>
    public async Task<long> RunRetentionAsync(CancellationToken cancellationToken = default)
    {
        var removed = await History.TrimAsync(new RetentionPolicy(Options.RetentionMessagesPerTopic, Options.RetentionMaxAge), NowMs, cancellationToken);
        if (removed > 0)
        {
            HubLog.RetentionTrimmed(Logger, removed);
        }
        return removed;
    }

    private async Task RetentionLoopAsync(CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(Options.RetentionInterval, Time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                try
                {
                    await RunRetentionAsync(cancellationToken);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    HubLog.RetentionFailed(Logger, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    // One sweep over all connections, at most every second: idle sockets, and credentials that are
    // about to expire (warned on hub:lobby) or have expired (closed with 4401).
    private async Task IdleLoopAsync(CancellationToken cancellationToken)
    {
        var idleMs = (long)Options.IdleTimeout.TotalMilliseconds;
        var warnMs = (long)Options.TokenExpiryWarning.TotalMilliseconds;
        var period = TimeSpan.FromMilliseconds(Math.Clamp(idleMs / 4, 50, 1000));
        using var timer = new PeriodicTimer(period);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                var now = NowMs;
                foreach (var connection in _connections.Values)
                {
                    if (connection.IsClosing)
                    {
                        continue;
                    }
                    var idle = connection.IdleMilliseconds;
                    if (idle >= idleMs)
                    {
                        Metrics.IdleTimeoutClose();
                        HubLog.IdleClose(Logger, connection.Id, idle);
                        SafeClose(connection, CloseStatus.IdleTimeout, "idle timeout: no heartbeat");
                        continue;
                    }
                    if (connection.Principal.ExpiresAtMs is not { } expires)
                    {
                        continue;
                    }
                    if (now >= expires)
                    {
                        HubLog.CredentialExpired(Logger, connection.Id, connection.Principal.Name);
                        SafeClose(connection, CloseStatus.TokenExpired, "token expired: refresh it and reconnect");
                    }
                    else if (now >= expires - warnMs && connection.MarkExpiryWarned(expires))
                    {
                        connection.Send(Parley.Hub.Lobby.LobbyChannel.TokenExpiredFrame(expires));
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await ShutdownAsync();
        foreach (var loop in new[] { _retentionLoop, _idleLoop })
        {
            if (loop is not null)
            {
                await loop;
            }
        }
        _stopping.Dispose();
        Presence.Dispose();
    }
}
