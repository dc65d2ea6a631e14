using Parley.Hub;
using Parley.Server;

namespace Parley.Bench.Tests.Infrastructure;

/// <summary>
/// An in-process hub on 127.0.0.1:0, configured the way benchmarks run it: push rate limits out of the way,
/// commits without fsync (the page cache is enough to prove acks and ordering in-process).
/// </summary>
public sealed class BenchHub : IAsyncLifetime
{
    private ParleyServerHost? _host;
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "parley-bench-test-" + Guid.NewGuid().ToString("N"));

    /// <summary>Set before <see cref="InitializeAsync"/> to change the hub's limits.</summary>
    public Action<HubOptions> Configure { get; init; } = static hub =>
    {
        hub.PushesPerSecond = 1_000_000;
        hub.PushBurst = 1_000_000;
    };

    public Uri BaseUrl => _host?.BaseUrl ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync()
    {
        var options = new ServerOptions
        {
            Listen = "127.0.0.1:0",
            DataDir = _dataDir,
            FileLogging = false,
            DurableCommits = false,
            InsecureNoAuth = true, // the load generator connects anonymously
        };
        options.Log.Console = false;
        Configure(options.Hub);
        _host = await ParleyServerHost.StartAsync(options).WaitAsync(TimeSpan.FromSeconds(30));
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }
        try
        {
            Directory.Delete(_dataDir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>A hub with a tight push rate limit (5/s, burst 10: one window of pushes trips it), to see the bench notice it.</summary>
public sealed class RateLimitedHub : IAsyncLifetime
{
    private readonly BenchHub _hub = new()
    {
        Configure = static hub =>
        {
            hub.PushesPerSecond = 5;
            hub.PushBurst = 10;
        },
    };

    public Uri BaseUrl => _hub.BaseUrl;

    public Task InitializeAsync() => _hub.InitializeAsync();

    public Task DisposeAsync() => _hub.DisposeAsync();
}
