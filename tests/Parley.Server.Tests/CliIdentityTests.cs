using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>parley register</c> and <c>parley login</c> as processes against a real hub.</summary>
public sealed class CliIdentityTests : IAsyncLifetime
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);
    private TestHub _hub = null!;
    private string _config = null!;
    private Dictionary<string, string> _env = null!;

    public async Task InitializeAsync()
    {
        _hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        _config = Path.Combine(Path.GetTempPath(), "parley-cli-" + Guid.NewGuid().ToString("N"));
        _env = new Dictionary<string, string> { ["XDG_CONFIG_HOME"] = _config };
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        try
        {
            Directory.Delete(_config, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private Task<(int ExitCode, string Stdout, string Stderr)> Cli(params string[] args) => HubProcess.RunCliAsync(Limit, _env, args);

    private string Server => _hub.BaseUrl.ToString().TrimEnd('/');

    [Fact]
    public async Task Register_creates_a_private_key_and_login_yields_a_token_that_opens_a_socket()
    {
        var (code, stdout, stderr) = await Cli("register", "--server", Server, "--name", "alice", "--json");
        Assert.True(code == 0, stderr);
        var registered = JsonNode.Parse(stdout)!;
        Assert.Equal("owner", registered["role"]!.GetValue<string>());
        var keyFile = registered["key_file"]!.GetValue<string>();
        Assert.Equal(Path.Combine(_config, "parley", "keys", "alice.key"), keyFile);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        }

        var (loginCode, loginOut, loginErr) = await Cli("login", "--server", Server, "--name", "alice", "--json");
        Assert.True(loginCode == 0, loginErr);
        var token = JsonNode.Parse(loginOut)!["access_token"]!.GetValue<string>();
        await using var socket = await RawWebSocket.ConnectAsync(_hub.BaseUrl, "/socket/websocket?vsn=2.0.0&token=" + Uri.EscapeDataString(token));
        Assert.Equal("alice", (await socket.JoinAsync("hub:lobby"))["name"]!.GetValue<string>());

        var (humanCode, human, _) = await Cli("login", "--server", Server, "--name", "alice");
        Assert.Equal(0, humanCode);
        Assert.Contains("Logged in", human, StringComparison.Ordinal);
        Assert.DoesNotContain("eyJ", human, StringComparison.Ordinal); // no token unless asked for
    }

    [Fact]
    public async Task Refusals_are_clear_and_exit_1_and_a_readable_key_file_is_refused()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);

        var (code, _, stderr) = await Cli("register", "--server", Server, "--name", "bob");
        Assert.Equal(1, code);
        Assert.Contains("invite_required", stderr, StringComparison.Ordinal);

        // An existing name without an invite gets the same answer as a new one: names cannot be probed.
        var (taken, _, takenErr) = await Cli("register", "--server", Server, "--name", "alice");
        Assert.Equal(1, taken);
        Assert.Contains("invite_required", takenErr, StringComparison.Ordinal);

        var (unknown, _, unknownErr) = await Cli("login", "--server", Server, "--name", "carol");
        Assert.Equal(1, unknown);
        Assert.Contains("register first", unknownErr, StringComparison.Ordinal);

        if (!OperatingSystem.IsWindows())
        {
            var keyFile = Path.Combine(_config, "parley", "keys", "alice.key");
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            var (readable, _, readableErr) = await Cli("login", "--server", Server, "--name", "alice");
            Assert.Equal(1, readable);
            Assert.Contains("chmod 600", readableErr, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_bench_token_never_shows_in_its_errors()
    {
        const string secret = "prl_SuperSecretBenchKey_0123456789abcdef";
        var (code, stdout, stderr) = await Cli("bench", "fanout", "--url", $"http://127.0.0.1:{HubProcess.FreePort()}", "--token", secret,
            "--subscribers", "1", "--warmup", "0s", "--duration", "1s", "--json");
        Assert.Equal(1, code);
        Assert.Contains("cannot connect", stdout + stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(secret, stdout + stderr, StringComparison.Ordinal);

        // A hub that wants a credential: the refusal says what to do.
        var (refused, refusedOut, refusedErr) = await Cli("bench", "fanout", "--url", Server, "--subscribers", "1", "--warmup", "0s", "--duration", "1s");
        Assert.Equal(1, refused);
        Assert.Contains("--insecure-no-auth", refusedOut + refusedErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Serve_refuses_anonymous_access_on_a_non_loopback_address()
    {
        var (code, _, stderr) = await Cli("serve", "--listen", "0.0.0.0:0", "--allow-remote", "--insecure-no-auth", "--data", Path.Combine(_config, "data"));
        Assert.Equal(2, code);
        Assert.Contains("--insecure-no-auth", stderr, StringComparison.Ordinal);
        Assert.Contains("loopback", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Usage_errors_exit_2_and_an_unreachable_hub_exits_1()
    {
        Assert.Equal(2, (await Cli("register", "--server", "ftp://x", "--name", "alice")).ExitCode);
        Assert.Equal(2, (await Cli("register", "--server", Server, "--name", "Not Valid")).ExitCode);
        var (code, _, stderr) = await Cli("register", "--server", $"http://127.0.0.1:{HubProcess.FreePort()}", "--name", "alice");
        Assert.Equal(1, code);
        Assert.Contains("is the hub running?", stderr, StringComparison.Ordinal);
    }
}
