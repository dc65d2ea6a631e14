using Parley.Client;

namespace Parley.Server.Tests.Infrastructure;

/// <summary>
/// A test class's own hub with identity on (an owner registered), and .NET clients that are disposed with
/// it. <see cref="ConnectAsync(string)"/> dials with a credential; <see cref="ConnectAsUserAsync"/> registers a user first.
/// </summary>
public abstract class AuthenticatedHubTest : IAsyncLifetime
{
    private readonly List<ParleyClient> _clients = [];

    protected TestHub Hub { get; private set; } = null!;

    protected IdentityClient Id { get; private set; } = null!;

    /// <summary>Hub limits for this class (default: the stock ones).</summary>
    protected virtual void Configure(Parley.Hub.HubOptions options)
    {
    }

    /// <summary>Server settings for this class beyond the hub limits (default: the stock ones; authentication stays on).</summary>
    protected virtual void ConfigureServer(ServerOptions options)
    {
    }

    private void ConfigureAuthenticatedServer(ServerOptions options)
    {
        ConfigureServer(options);
        options.InsecureNoAuth = false;
    }

    public async Task InitializeAsync()
    {
        Hub = await TestHub.StartAsync(configure: Configure, configureServer: ConfigureAuthenticatedServer);
        Id = await IdentityClient.ForAsync(Hub);
        await Id.RegisterAsync("owner1");
    }

    public async Task DisposeAsync()
    {
        foreach (var client in _clients)
        {
            await client.DisposeAsync();
        }
        Id.Dispose();
        await Hub.DisposeAsync();
    }

    /// <summary>A started client on <see cref="Hub"/> with <paramref name="credential"/> (a big message buffer: tests read late).</summary>
    protected async Task<ParleyClient> ConnectAsync(string credential)
    {
        var client = new ParleyClient(new ParleyClientOptions
        {
            Server = Hub.BaseUrl,
            Credentials = (_, _) => ValueTask.FromResult<string?>(credential),
            MessageBuffer = 10_000,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            ReplyTimeout = TimeSpan.FromSeconds(10),
        });
        _clients.Add(client);
        await client.StartAsync();
        return client;
    }

    /// <summary>
    /// Stops the hub and starts a new one on the same data directory (on a new port: clients made before
    /// must be made again, and <see cref="Id"/> still points at the old hub; tokens made before stay valid).
    /// </summary>
    protected async Task RestartHubAsync()
    {
        var dataDir = Hub.DataDir;
        await Hub.Host.DisposeAsync(); // the data directory stays
        Hub = await TestHub.StartAsync(configure: Configure, dataDir: dataDir, configureServer: ConfigureAuthenticatedServer);
    }

    /// <summary>Disposes a client early (it is not disposed again).</summary>
    protected async Task DropAsync(ParleyClient client)
    {
        _clients.Remove(client);
        await client.DisposeAsync();
    }

    /// <summary>An access token for a new user with <paramref name="role"/>.</summary>
    protected async Task<string> TokenAsync(string name, string role = "member") => (await Id.LoginAsync(await Id.RegisterAsync(name, role))).AccessToken;

    /// <summary>Registers a user with <paramref name="role"/> and connects as them.</summary>
    protected async Task<ParleyClient> ConnectAsUserAsync(string name, string role = "member") => await ConnectAsync(await TokenAsync(name, role));
}
