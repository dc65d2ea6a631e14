using Microsoft.Extensions.Logging;
using Parley.Client;
using Parley.Server;
using Parley.Terminal;

namespace Parley.Cli.Terminals;

/// <summary>Where <c>parley run</c> shows its session live.</summary>
internal abstract record ShareTarget
{
    /// <summary>A hub the user configured (flag, <c>PARLEY_SERVER</c> or profile), on their credential.</summary>
    public sealed record Hub(Uri Server, Func<CredentialRequest, CancellationToken, ValueTask<string?>>? Credentials) : ShareTarget;

    /// <summary>No hub configured: this process hosts the session on an ephemeral loopback port.</summary>
    public sealed record Local : ShareTarget;

    /// <summary>Record only (<c>--offline</c>).</summary>
    public sealed record None : ShareTarget;
}

/// <summary>
/// Makes a <see cref="TerminalSession"/> watchable: a <see cref="TerminalPublisher"/> streams it to a hub as the
/// owner of <c>term:&lt;id&gt;</c> — the configured hub, or one this process starts on <c>127.0.0.1:0</c> with no
/// authentication (loopback only, as the hub allows) and its data in a temporary directory. Connecting never holds
/// the command up: the session records from its first byte and the publisher catches up from the recording.
/// Problems are reported once, on one line, through <c>warn</c>; the command runs on either way.
/// </summary>
internal sealed class SessionSharing : IAsyncDisposable
{
    private static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    private readonly ParleyServerHost? _host;
    private readonly string? _dataDir;
    private readonly Uri _server;
    private readonly Func<CredentialRequest, CancellationToken, ValueTask<string?>>? _credentials;
    private readonly Action<string> _warn;
    private readonly CancellationTokenSource _stop = new();
    private ParleyClient? _client;
    private TerminalPublisher? _publisher;
    private TerminalSubscription? _subscription;
    private Task? _connect;

    private SessionSharing(Uri server, Func<CredentialRequest, CancellationToken, ValueTask<string?>>? credentials, ParleyServerHost? host, string? dataDir, Action<string> warn)
    {
        _server = server;
        _credentials = credentials;
        _host = host;
        _dataDir = dataDir;
        _warn = warn;
    }

    /// <summary>The hub's base URL.</summary>
    public Uri Server => _server;

    /// <summary>True when this process hosts the hub.</summary>
    public bool IsLocal => _host is not null;

    /// <summary>The page that shows session <paramref name="id"/>.</summary>
    public Uri PageUrl(string id) => new(_server, "/terminals/" + Uri.EscapeDataString(id));

    /// <summary>Prepares sharing before the command starts (a local hub is started here, so its URL can be printed first).</summary>
    public static async Task<SessionSharing?> PrepareAsync(ShareTarget target, Action<string> warn, CancellationToken cancellationToken)
    {
        switch (target)
        {
            case ShareTarget.Hub hub:
                return new SessionSharing(hub.Server, hub.Credentials, null, null, warn);
            case ShareTarget.Local:
                var dataDir = Directory.CreateTempSubdirectory("parley-run-").FullName;
                var options = new ServerOptions
                {
                    Listen = "127.0.0.1:0",
                    DataDir = dataDir,
                    InsecureNoAuth = true,
                    DurableCommits = false,
                    FileLogging = false,
                };
                options.Log.Console = false;
                options.Log.MinimumLevel = LogLevel.Warning;
                try
                {
                    var host = await ParleyServerHost.StartAsync(options, cancellationToken: cancellationToken);
                    return new SessionSharing(host.BaseUrl, null, host, dataDir, warn);
                }
                catch (Exception ex) when (ex is IOException or InvalidOperationException or UnauthorizedAccessException)
                {
                    TryDelete(dataDir);
                    warn($"cannot host the session on loopback ({ex.Message}); recording only");
                    return null;
                }
            default:
                return null;
        }
    }

    /// <summary>Starts streaming <paramref name="session"/>; returns at once (the connection is made in the background).</summary>
    public void Start(TerminalSession session)
    {
        _client = new ParleyClient(new ParleyClientOptions
        {
            Server = _server,
            Credentials = _credentials,
            ClientKind = "cli",
            Backoff = ParleyClientOptions.DefaultBackoff,
        });
        _publisher = new TerminalPublisher(_client, session);
        _connect = Task.Run(() => ConnectAsync(session, _stop.Token));
    }

    private async Task ConnectAsync(TerminalSession session, CancellationToken ct)
    {
        var warned = false;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await _client!.StartAsync(ct);
                await _publisher!.StartAsync(ct);
                _subscription = session.Subscribe(_publisher);
                if (_subscription.Exit is { } exit)
                {
                    _publisher.OnExit(exit);
                }
                if (warned)
                {
                    _warn($"now live on {_server}");
                }
                return;
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ParleyClientException ex) when (ex.Message.Contains("refused the session", StringComparison.Ordinal) || ex.Message.Contains("auth_failed", StringComparison.Ordinal))
            {
                _warn($"not live: {ex.Message}; recording only");
                return;
            }
            catch (Exception ex) when (ex is ParleyClientException or CredentialUnavailableException or IOException or TimeoutException)
            {
                if (!warned)
                {
                    _warn($"cannot reach {_server} ({ex.Message}); recording, and trying again");
                    warned = true;
                }
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(2), ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>Waits until the hub has the session (so its page opens) or connecting gave up, at most <paramref name="timeout"/>.</summary>
    public async Task WaitLiveAsync(TimeSpan timeout)
    {
        if (_connect is not null)
        {
            await Task.WhenAny(_connect, Task.Delay(timeout));
        }
    }

    /// <summary>After the command's exit: waits (bounded) until the hub holds the whole recording and the exit.</summary>
    public async Task<bool> DrainAsync()
    {
        if (_connect is null || _publisher is null)
        {
            return false;
        }
        var deadline = Task.Delay(DrainTimeout);
        if (await Task.WhenAny(_connect, deadline) == deadline)
        {
            return false;
        }
        return _subscription is not null && await _publisher.DrainAsync(DrainTimeout);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _subscription?.Dispose();
        if (_connect is not null)
        {
            await _connect.ContinueWith(_ => { }, TaskScheduler.Default);
        }
        if (_publisher is not null)
        {
            await _publisher.DisposeAsync();
        }
        if (_client is not null)
        {
            await _client.DisposeAsync();
        }
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        if (_dataDir is not null)
        {
            TryDelete(_dataDir);
        }
        _stop.Dispose();
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
