using Microsoft.Extensions.Logging.Abstractions;
using Parley.Identity;
using Parley.Identity.Crypto;
using Parley.Storage.Sqlite.Identity;

namespace Parley.Identity.Tests;

/// <summary>A clock the test moves by hand.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;
    private long _ticks;

    public override DateTimeOffset GetUtcNow() => _now;

    public override long GetTimestamp() => _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public void Advance(TimeSpan by)
    {
        _now += by;
        _ticks += by.Ticks;
    }
}

/// <summary>A device: a key pair that signs challenges the way <c>parley</c> does.</summary>
public sealed record Device(byte[] PrivateKey, byte[] PublicKey)
{
    public static Device Create()
    {
        var (privateKey, publicKey) = DeviceKeys.Generate();
        return new Device(privateKey, publicKey);
    }

    public byte[] SignLogin(string hubId, string name, string nonce, long timestampMs) =>
        DeviceKeys.Sign(PrivateKey, DeviceKeys.LoginMessage(hubId, name, nonce, timestampMs));
}

/// <summary>An identity service over a real SQLite file in a temp directory, with a manual clock.</summary>
public sealed class IdentityFixture : IAsyncDisposable
{
    private readonly string _dir;

    private IdentityFixture(string dir, SqliteIdentityStore store, IdentityService service, ManualClock clock)
    {
        _dir = dir;
        Store = store;
        Service = service;
        Clock = clock;
    }

    public SqliteIdentityStore Store { get; }
    public IdentityService Service { get; }
    public ManualClock Clock { get; }

    public long NowMs => Clock.GetUtcNow().ToUnixTimeMilliseconds();

    public static async Task<IdentityFixture> StartAsync(Action<IdentityOptions>? configure = null)
    {
        var dir = Path.Combine(Path.GetTempPath(), "parley-identity-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        var store = await SqliteIdentityStore.OpenAsync(Path.Combine(dir, "identity.db"));
        var options = new IdentityOptions();
        configure?.Invoke(options);
        var clock = new ManualClock(new DateTimeOffset(2026, 11, 25, 12, 0, 0, TimeSpan.Zero));
        var service = await IdentityService.StartAsync(store, options, clock, NullLogger.Instance);
        return new IdentityFixture(dir, store, service, clock);
    }

    /// <summary>Registers a user with a new device (the first one becomes owner).</summary>
    public async Task<(Device Device, HubRole Role)> RegisterAsync(string name, string? invite = null)
    {
        var device = Device.Create();
        var (role, _) = await Service.RegisterAsync(name, device.PublicKey, null, invite, "127.0.0.1");
        return (device, role);
    }

    /// <summary>Challenge, sign, login.</summary>
    public async Task<TokenPair> LoginAsync(string name, Device device, string address = "127.0.0.1")
    {
        var challenge = Service.IssueChallenge(name, address);
        var now = NowMs;
        return await Service.LoginAsync(name, challenge.Nonce, now, device.SignLogin(Service.HubId, name, challenge.Nonce, now), address);
    }

    public async Task<Caller> CallerAsync(string credential)
    {
        var (caller, error) = await Service.AuthenticateAsync(credential);
        Assert.True(caller is not null, $"expected the credential to authenticate, got '{error}'");
        return caller!;
    }

    public async ValueTask DisposeAsync()
    {
        await Store.DisposeAsync();
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
