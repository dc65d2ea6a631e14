using Parley.Hub;
using Parley.Hub.Auth;

namespace Parley.Server.Tests.Infrastructure;

/// <summary>An in-process hub on real Kestrel at 127.0.0.1:0 with its own temporary data directory.</summary>
public sealed class TestHub : IAsyncDisposable
{
    private TestHub(ParleyServerHost host, string dataDir)
    {
        Host = host;
        DataDir = dataDir;
    }

    public ParleyServerHost Host { get; }
    public string DataDir { get; }
    public Uri BaseUrl => Host.BaseUrl;
    public ParleyHub Hub => Host.Hub;

    public static async Task<TestHub> StartAsync(Action<HubOptions>? configure = null, IConnectAuthenticator? authenticator = null, string? dataDir = null, bool fileLogging = false, Action<ServerOptions>? configureServer = null)
    {
        dataDir ??= Path.Combine(Path.GetTempPath(), "parley-test-" + Guid.NewGuid().ToString("N"));
        var options = new ServerOptions
        {
            Listen = "127.0.0.1:0",
            DataDir = dataDir,
            FileLogging = fileLogging,
            // The page cache is enough to prove ordering and acks in-process; the crash test uses full sync.
            DurableCommits = false,
            // Protocol tests connect anonymously; the identity tests turn authentication on.
            InsecureNoAuth = true,
        };
        options.Log.Console = false;
        configure?.Invoke(options.Hub);
        configureServer?.Invoke(options);
        var host = await ParleyServerHost.StartAsync(options, authenticator).WaitAsync(TimeSpan.FromSeconds(30));
        return new TestHub(host, dataDir);
    }

    public Task<RawWebSocket> ConnectAsync(int? receiveBufferBytes = null) =>
        RawWebSocket.ConnectAsync(BaseUrl, receiveBufferBytes: receiveBufferBytes);

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        TryDelete(DataDir);
    }

    public static void TryDelete(string dir)
    {
        try
        {
            Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
