using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Parley.Hub;
using Parley.Hub.Auth;
using Parley.Hub.Fleet;
using Parley.Hub.Terminals;
using Parley.Hub.Inbox;
using Parley.Hub.State;
using Parley.Hub.Tasks;
using Parley.Identity;
using Parley.Server.Identity;
using Parley.Storage.Sqlite.Fleet;
using Parley.Storage.Sqlite.Identity;
using Parley.Storage.Sqlite.Inbox;
using Parley.Storage.Sqlite.State;
using Parley.Server.Logging;
using Parley.Server.Observability;
using Parley.Server.Streams;
using Parley.Server.Transport;
using Parley.Server.Web;
using Parley.Storage.Sqlite;

namespace Parley.Server;

/// <summary>
/// A running hub: Kestrel, the Phoenix socket, <c>/health</c>, <c>/metrics</c>, the SQLite store and the
/// hub core, wired together. <c>parley serve</c> and the integration tests both start it this way.
/// </summary>
public sealed class ParleyServerHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly SqliteHistoryStore _store;
    private readonly SqliteIdentityStore _identityStore;
    private readonly SqliteStateStore _stateStore;
    private readonly SqliteInboxStore _inboxStore;
    private int _stopped;

    private ParleyServerHost(WebApplication app, SqliteHistoryStore store, SqliteIdentityStore identityStore, SqliteStateStore stateStore, SqliteInboxStore inboxStore, IdentityService identity, ParleyHub hub, ServerOptions options, string databasePath, IReadOnlyList<Uri> urls)
    {
        _app = app;
        _store = store;
        _identityStore = identityStore;
        _stateStore = stateStore;
        _inboxStore = inboxStore;
        Identity = identity;
        Hub = hub;
        Options = options;
        DatabasePath = databasePath;
        Urls = urls;
    }

    public ParleyHub Hub { get; }

    /// <summary>The supervised instances (docs/fleet.md).</summary>
    public FleetService Fleet { get; private init; } = null!;

    private SqliteInstanceStore _fleetStore = null!;

    /// <summary>The terminal sessions the hub holds (docs/protocol.md §17).</summary>
    public TerminalRegistry Terminals { get; private init; } = null!;
    public ServerOptions Options { get; }

    /// <summary>Users, keys and tokens.</summary>
    public IdentityService Identity { get; }

    /// <summary>Where the initial owner API key was written on this start (a fresh data dir), else null.</summary>
    public string? InitialOwnerKeyFile { get; private set; }

    /// <summary>The feed of direct-message state changes behind <c>/ws/messages</c> and <c>events:messages</c>.</summary>
    public MessageEvents MessageEvents { get; private set; } = null!;

    /// <summary>The file name of the initial owner API key in the data dir.</summary>
    public const string InitialOwnerKeyFileName = "initial-owner-key";
    public string DatabasePath { get; }

    /// <summary>The addresses actually bound (with the real port when 0 was asked for).</summary>
    public IReadOnlyList<Uri> Urls { get; }

    /// <summary>The first bound address, e.g. <c>http://127.0.0.1:4000/</c>.</summary>
    public Uri BaseUrl => Urls[0];

    /// <summary>The WebSocket URL phoenix.js clients use (<c>new Socket(url + "/socket")</c> appends <c>/websocket</c>).</summary>
    public Uri SocketUrl => new($"ws://{BaseUrl.Authority}/socket/websocket?vsn=2.0.0");

    /// <summary>The log file, or null when file logging is off.</summary>
    public string? LogFile => Options.Log.FilePath;

    /// <summary>Validates <paramref name="options"/>, opens the store and starts listening.</summary>
    public static async Task<ParleyServerHost> StartAsync(ServerOptions options, IConnectAuthenticator? authenticator = null, IJoinAuthorizer? joinAuthorizer = null, CancellationToken cancellationToken = default)
    {
        var endPoint = options.Validate();
        var dataDir = Path.GetFullPath(options.DataDir);
        options.DataDir = dataDir;
        CreatePrivateDirectory(dataDir);
        if (options.FileLogging)
        {
            options.Log.FilePath ??= Path.Combine(dataDir, "logs", "parley.log");
        }
        else
        {
            options.Log.FilePath = null;
        }

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddParleyLogging(options.Log);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Socket upgrades are taken off the raw connection before HTTP parsing (see SocketConnectionMiddleware).
            kestrel.Listen(endPoint, listen => listen.Use(next =>
                kestrel.ApplicationServices.GetRequiredService<SocketConnectionMiddleware>().Wrap(next)));
        });
        // Socket continuations run on the I/O threads instead of being queued: a broadcast's flush sends
        // straight from the connection's write loop. The price is a rule: code on the socket path never
        // blocks (stores move their synchronous work off the caller's thread; see docs/architecture.md).
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout);

        var databasePath = Path.Combine(dataDir, "parley.db");
        var identityStore = await SqliteIdentityStore.OpenAsync(Path.Combine(dataDir, "identity.db"), cancellationToken);
        var stateStore = await SqliteStateStore.OpenAsync(Path.Combine(dataDir, "state.db"), options.DurableCommits, cancellationToken);
        var inboxStore = await SqliteInboxStore.OpenAsync(Path.Combine(dataDir, "inbox.db"), options.DurableCommits, cancellationToken);
        var fleetStore = await SqliteInstanceStore.OpenAsync(Path.Combine(dataDir, "fleet.db"), options.DurableCommits, cancellationToken);
        FleetService? fleet = null;
        TerminalRegistry? terminals = null;
        SqliteHistoryStore? store = null;
        WebApplication app;
        ParleyHub hub;
        IdentityService identity;
        string? initialOwnerKeyFile = null;
        MessageEvents messageEvents;
        try
        {
            store = await SqliteHistoryStore.OpenAsync(databasePath, new SqliteHistoryStoreOptions { SynchronousFull = options.DurableCommits }, cancellationToken);
            // The hub is created on first resolution, after the identity service below (the lambda reads
            // the authenticator and authorizer then).
            builder.Services.AddSingleton(sp => new ParleyHub(options.Hub, store, sp.GetRequiredService<ILoggerFactory>(), authenticator, joinAuthorizer));
            builder.Services.AddSingleton(options);
            builder.Services.AddSingleton<SocketAcceptor>();
            builder.Services.AddSingleton<SocketConnectionMiddleware>();
            builder.Services.AddSingleton<PhoenixSocketEndpoint>();
            builder.Services.AddSingleton<MetricsExporter>();
            builder.Services.AddHostedService<HubLifecycle>();
            builder.Services.AddSingleton<PlainStreamRegistry>();
            builder.Services.AddSingleton<PlainStreamEndpoint>();
            builder.Services.AddHostedService<PlainStreamLifecycle>();
            app = builder.Build();
            identity = await IdentityService.StartAsync(identityStore, options.Identity, TimeProvider.System,
                app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Parley.Identity"), cancellationToken);
            initialOwnerKeyFile = await WriteInitialOwnerKeyAsync(identity, dataDir, cancellationToken);
            var identityGate = new IdentityAuthenticator(identity);
            authenticator ??= options.InsecureNoAuth ? new AnonymousConnectAuthenticator() : identityGate;
            joinAuthorizer ??= options.InsecureNoAuth ? new AllowAllJoinAuthorizer() : identityGate;
            hub = app.Services.GetRequiredService<ParleyHub>();
            LiveAccess.Follow(identity, hub);
            IdentityLobbyCommands.Register(hub.Lobby, identity, hub);
            hub.Router.Add(new StateChannel(hub, stateStore, options.State));
            hub.Router.Add(new TaskBoardChannel(hub, stateStore, options.State));
            messageEvents = new MessageEvents(options.Streams.RecentMessageEvents);
            var inbox = new InboxChannel(hub, inboxStore, new IdentityRecipientDirectory(identity), messageEvents);
            hub.Router.Add(inbox);
            inbox.RegisterLobbyCommands(hub.Lobby);
            hub.Router.Add(new MessageEventsChannel(hub, messageEvents));
            PlainStreamAccess.Follow(identity, app.Services.GetRequiredService<PlainStreamRegistry>());
            IdentityEndpoints.MapMessages(app, identity, inboxStore);
            identity.MoveTopicHistory = async (from, to, ct) =>
            {
                if (!await hub.History.RenameTopicAsync(from, to, ct))
                {
                    return false;
                }
                // A room's task board follows the room's rules, so it moves with the room.
                await stateStore.RenameNamespaceAsync(TaskBoardChannel.BoardOf(from), TaskBoardChannel.BoardOf(to), ct);
                return true;
            };
            terminals = new TerminalRegistry(options.Terminals, options.Hub, Path.Combine(dataDir, "terminals"), hub.Metrics, hub.Time,
                app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Parley.Terminals"));
            // Instances with terminal: true are hosted as terminal sessions of this registry.
            fleet = new FleetService(fleetStore, options.Fleet, Path.Combine(dataDir, "fleet"), hub.Time, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Parley.Fleet"), terminals);
            var fleetChannel = new FleetChannel(hub, fleet);
            hub.Router.Add(fleetChannel);
            fleetChannel.RegisterLobbyCommands(hub.Lobby);
            hub.Router.Add(new LogsChannel(hub, fleet));
            hub.Router.Add(new TerminalChannel(hub, terminals));
            IdentityEndpoints.MapTerminals(app, identity, terminals, options.InsecureNoAuth);
            WebPages.Map(app);
            MapStreams(app, messageEvents, fleet);
            MapEndpoints(app, hub);
            IdentityEndpoints.Map(app, identity, hub, options.InsecureNoAuth);
            IdentityEndpoints.MapFleet(app, identity, fleet);
            await app.StartAsync(cancellationToken);
            await fleet.StartAsync(cancellationToken);
        }
        catch
        {
            if (store is not null)
            {
                await store.DisposeAsync();
            }
            await identityStore.DisposeAsync();
            await stateStore.DisposeAsync();
            await inboxStore.DisposeAsync();
            if (fleet is not null)
            {
                await fleet.DisposeAsync();
            }
            if (terminals is not null)
            {
                await terminals.DisposeAsync();
            }
            await fleetStore.DisposeAsync();
            throw;
        }

        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses
            .Select(a => new Uri(a.Replace("[::]", "[::1]", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal)))
            .ToList();
        ServerLog.Listening(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Parley.Server"), string.Join(", ", addresses), dataDir);
        return new ParleyServerHost(app, store, identityStore, stateStore, inboxStore, identity, hub, options, databasePath, addresses) { InitialOwnerKeyFile = initialOwnerKeyFile, MessageEvents = messageEvents, Fleet = fleet, _fleetStore = fleetStore, Terminals = terminals };
    }

    // A fresh hub (no users, no keys) gets an owner API key in <data dir>/initial-owner-key, mode 0600,
    // so it can be administered and scripted before anyone registers.
    private static async Task<string?> WriteInitialOwnerKeyAsync(IdentityService identity, string dataDir, CancellationToken cancellationToken)
    {
        var path = Path.Combine(dataDir, InitialOwnerKeyFileName);
        var secret = await identity.CreateInitialOwnerKeyAsync(cancellationToken);
        if (secret is null)
        {
            return null;
        }
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        await using (var file = new FileStream(path, options))
        await using (var writer = new StreamWriter(file))
        {
            await writer.WriteLineAsync(secret);
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        return path;
    }

    private static void MapEndpoints(WebApplication app, ParleyHub hub)
    {
        var socket = app.Services.GetRequiredService<PhoenixSocketEndpoint>();
        var metrics = app.Services.GetRequiredService<MetricsExporter>();
        app.Map(SocketAcceptor.SocketPath, socket.HandleAsync);
        app.MapGet("/health", (HttpContext context) => WriteHealthAsync(context, hub));
        app.MapGet("/metrics", async (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
            await metrics.WriteAsync(context.Response.Body, context.RequestAborted);
        });
        app.MapGet("/", () => Results.Text("Parley hub. Phoenix V2 socket at /socket/websocket?vsn=2.0.0; see /health and /metrics.\n"));
    }

    // Plain JSON WebSocket streams (docs/protocol.md §16): registered for the connection middleware, and
    // mapped for upgrades that arrive on keep-alive HTTP connections.
    private static void MapStreams(WebApplication app, MessageEvents messageEvents, FleetService fleet)
    {
        var registry = app.Services.GetRequiredService<PlainStreamRegistry>();
        registry.Add(new MessageEventStream(messageEvents));
        registry.Add(new InstanceStream(fleet));
        registry.Add(new LogStream(fleet));
        var endpoint = app.Services.GetRequiredService<PlainStreamEndpoint>();
        app.Map(PlainStreamRegistry.PathPrefix + "{**path}", endpoint.HandleAsync);
    }

    private static async Task WriteHealthAsync(HttpContext context, ParleyHub hub)
    {
        context.Response.ContentType = "application/json";
        context.Response.StatusCode = hub.IsShuttingDown ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK;
        await using var writer = new Utf8JsonWriter(context.Response.Body);
        writer.WriteStartObject();
        writer.WriteString("status", hub.IsShuttingDown ? "shutting_down" : "ok");
        writer.WriteString("version", Version);
        writer.WriteNumber("uptime_s", Math.Round((hub.Time.GetUtcNow() - hub.StartedAt).TotalSeconds, 1));
        writer.WriteNumber("connections", hub.ConnectionCount);
        writer.WriteEndObject();
        await writer.FlushAsync(context.RequestAborted);
    }

    /// <summary>The hub's version (from the assembly).</summary>
    public static string Version { get; } =
        typeof(ParleyServerHost).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>Waits until the host stops (SIGTERM, Ctrl-C or <see cref="StopAsync"/>).</summary>
    public Task WaitForShutdownAsync(CancellationToken cancellationToken = default) => _app.WaitForShutdownAsync(cancellationToken);

    /// <summary>Graceful stop: flush appends, close sockets with 1001, stop Kestrel, close the store.</summary>
    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }
        await _app.StopAsync();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        await Fleet.DisposeAsync(); // children get SIGTERM, then SIGKILL after the grace period
        await Hub.DisposeAsync();
        await Terminals.DisposeAsync();
        await _app.DisposeAsync();
        await _store.DisposeAsync();
        await _identityStore.DisposeAsync();
        await _stateStore.DisposeAsync();
        await _inboxStore.DisposeAsync();
        await _fleetStore.DisposeAsync();
    }

    private static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>Starts the hub with the host and drains it first when the host stops.</summary>
    private sealed class HubLifecycle(ParleyHub hub, Microsoft.Extensions.Options.IOptions<HostOptions> hostOptions) : IHostedLifecycleService
    {
        public Task StartingAsync(CancellationToken cancellationToken)
        {
            hub.Start();
            return Task.CompletedTask;
        }

        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public async Task StoppingAsync(CancellationToken cancellationToken)
        {
            // Before Kestrel stops: commit and ack queued pushes, then send every socket 1001.
            // Budget: 60% of the shutdown timeout to flush appends, the rest for sockets to close.
            var timeout = hostOptions.Value.ShutdownTimeout;
            await hub.ShutdownAsync(timeout * 0.6);
            var deadline = DateTime.UtcNow + (timeout * 0.35);
            while (hub.ConnectionCount > 0 && DateTime.UtcNow < deadline && !cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(20, CancellationToken.None);
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
