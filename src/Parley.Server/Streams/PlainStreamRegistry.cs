using System.Collections.Concurrent;
using System.IO.Pipelines;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Parley.Protocol;
using Parley.Server.Transport;

namespace Parley.Server.Streams;

/// <summary>
/// The plain JSON WebSocket streams by path, and the live ones. The connection middleware asks
/// <see cref="TryMatch"/> for every upgrade that is not the Phoenix socket; <see cref="PlainStreamLifecycle"/>
/// closes every live stream with 1001 when the hub stops.
/// </summary>
internal sealed class PlainStreamRegistry(ServerOptions options, ILoggerFactory loggerFactory)
{
    private readonly List<IPlainStream> _streams = [];
    private readonly ConcurrentDictionary<PlainStreamConnection, byte> _live = new();
    private readonly ILogger _logger = loggerFactory.CreateLogger("Parley.Server.Streams");
    private long _opened;
    private long _resyncs;
    private long _idleCloses;
    private long _bytesSent;
    private volatile bool _stopping;

    /// <summary>Every path prefix served by plain streams.</summary>
    public const string PathPrefix = "/ws/";

    /// <summary>The registered streams.</summary>
    public IReadOnlyList<IPlainStream> Streams => _streams;

    /// <summary>Open streams.</summary>
    public int Count => _live.Count;

    /// <summary>Streams accepted since start.</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>Times a consumer fell behind and was sent a fresh snapshot.</summary>
    public long Resyncs => Interlocked.Read(ref _resyncs);

    /// <summary>Streams closed for silence (<see cref="PlainStreamOptions.IdleTimeout"/>).</summary>
    public long IdleCloses => Interlocked.Read(ref _idleCloses);

    /// <summary>Bytes written to plain streams.</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Adds a stream at start-up; one stream per path.</summary>
    public void Add(IPlainStream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.Path.StartsWith(PathPrefix, StringComparison.Ordinal) || _streams.Exists(s => s.Path == stream.Path))
        {
            throw new InvalidOperationException($"plain stream path '{stream.Path}' must start with {PathPrefix} and be served once");
        }
        _streams.Add(stream);
    }

    /// <summary>The stream serving <paramref name="path"/>: an exact path, else the longest prefix path (ending in <c>/</c>) it is below.</summary>
    public bool TryMatch(string path, out IPlainStream? stream, out string subpath)
    {
        stream = null;
        subpath = "";
        foreach (var candidate in _streams)
        {
            if (candidate.Path == path)
            {
                stream = candidate;
                subpath = "";
                return true;
            }
            if (candidate.Path.EndsWith('/') && path.Length > candidate.Path.Length && path.StartsWith(candidate.Path, StringComparison.Ordinal)
                && (stream is null || candidate.Path.Length > stream.Path.Length))
            {
                stream = candidate;
                subpath = path[candidate.Path.Length..];
            }
        }
        return stream is not null;
    }

    /// <summary>Runs an accepted stream over its pipes until it ends.</summary>
    public Task RunAsync(AcceptedSocket socket, PlainStreamTarget target, PipeReader input, PipeWriter output, Action abortTransport)
    {
        var connection = new PlainStreamConnection(socket.ConnectionId, socket.Principal, target.Params, target.Subpath, input, output, abortTransport, this, options.Streams, _logger);
        _live[connection] = 0;
        Interlocked.Increment(ref _opened);
        StreamLog.Opened(_logger, socket.ConnectionId, target.Stream.Path, socket.Principal.Name, socket.Remote);
        if (_stopping)
        {
            connection.Close(CloseStatus.GoingAway, "server shutting down");
        }
        return connection.RunAsync(target.Stream);
    }

    /// <summary>Closes every live stream with <paramref name="code"/> and stops taking new ones (they are closed at once).</summary>
    public void CloseAll(ushort code, string reason)
    {
        _stopping = true;
        foreach (var connection in _live.Keys)
        {
            connection.Close(code, reason);
        }
    }

    /// <summary>Ends every live stream whose principal matches with an error frame and 4000 + <paramref name="httpStatus"/>; returns how many.</summary>
    public int FailWhere(Func<Parley.Hub.Auth.ConnectionPrincipal, bool> match, int httpStatus, string code, string reason)
    {
        ArgumentNullException.ThrowIfNull(match);
        var closed = 0;
        foreach (var connection in _live.Keys)
        {
            if (!connection.IsClosing && match(connection.Principal))
            {
                connection.Fail(httpStatus, code, reason);
                closed++;
            }
        }
        return closed;
    }

    internal void Untrack(PlainStreamConnection connection) => _live.TryRemove(connection, out _);

    internal void CountResync() => Interlocked.Increment(ref _resyncs);

    internal void CountIdleClose() => Interlocked.Increment(ref _idleCloses);

    internal void CountSent(long bytes) => Interlocked.Add(ref _bytesSent, bytes);
}

/// <summary>What an accepted upgrade to a plain stream path carries to the stream.</summary>
internal sealed record PlainStreamTarget(IPlainStream Stream, string Subpath, IReadOnlyDictionary<string, string> Params);

/// <summary>When the host stops: every plain stream gets 1001 "server shutting down" and a moment to close.</summary>
internal sealed class PlainStreamLifecycle(PlainStreamRegistry registry) : IHostedLifecycleService
{
    private static readonly TimeSpan CloseWait = TimeSpan.FromSeconds(1.5);

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        registry.CloseAll(CloseStatus.GoingAway, "server shutting down");
        var deadline = DateTime.UtcNow + CloseWait;
        while (registry.Count > 0 && DateTime.UtcNow < deadline && !cancellationToken.IsCancellationRequested)
        {
            await Task.Delay(20, CancellationToken.None);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
