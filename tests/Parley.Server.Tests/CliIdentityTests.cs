using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>parley register</c> and <c>parley login</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests : IAsyncLifetime
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
    public async Task Refusals_are_clear_with_their_exit_codes_and_a_readable_key_file_is_refused()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);

        var (code, _, stderr) = await Cli("register", "--server", Server, "--name", "bob");
        Assert.Equal(3, code); // refused by the hub's policy (403)
        Assert.Contains("invite_required", stderr, StringComparison.Ordinal);

        // An existing name without an invite gets the same answer as a new one: names cannot be probed.
        var (taken, _, takenErr) = await Cli("register", "--server", Server, "--name", "alice");
        Assert.Equal(3, taken);
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
    public async Task Tail_prints_every_message_exactly_once_while_the_hub_is_killed_and_restarted_twice()
    {
        var dataDir = Path.Combine(_config, "hub");
        var port = HubProcess.FreePort();
        var hub = await HubProcess.StartAsync(dataDir, port);
        using var tail = HubProcess.StartCli(_env, "tail", "room:tailed", "--since-offset", "0", "--json", "--server", hub.BaseUrl.ToString());
        var lines = new List<string>();
        var reading = Task.Run(async () =>
        {
            while (await tail.StandardOutput.ReadLineAsync() is { } line)
            {
                lock (lines)
                {
                    lines.Add(line);
                }
            }
        });
        var status = new System.Text.StringBuilder();
        var statusReading = Task.Run(async () =>
        {
            while (await tail.StandardError.ReadLineAsync() is { } line)
            {
                lock (status)
                {
                    status.AppendLine(line);
                }
            }
        });
        try
        {
            // Start publishing once tail follows the topic (it says so on stderr).
            var joinedBy = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (true)
            {
                lock (status)
                {
                    if (status.ToString().Contains("following", StringComparison.Ordinal))
                    {
                        break;
                    }
                    Assert.True(DateTime.UtcNow < joinedBy, $"tail did not start following; its stderr:\n{status}");
                }
                await Task.Delay(50);
            }
            await using var writer = new Parley.Client.ParleyClient(new Parley.Client.ParleyClientOptions
            {
                Server = hub.BaseUrl,
                Backoff = [TimeSpan.FromMilliseconds(200)],
            });
            await writer.StartAsync();
            await writer.JoinAsync("room:tailed");
            var sent = 0;
            for (var round = 0; round < 3; round++)
            {
                for (var i = 0; i < 10; i++)
                {
                    Assert.True((await writer.PushAsync("room:tailed", "msg", new { body = $"line {++sent}" })).IsOk);
                }
                if (round < 2)
                {
                    hub.Kill();
                    await hub.DisposeAsync();
                    // The writer must see its socket die first; else it still looks ready and its next push is lost.
                    using var ready = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                    while (writer.IsReady)
                    {
                        await Task.Delay(20, ready.Token);
                    }
                    hub = await HubProcess.StartAsync(dataDir, port);
                    while (!writer.IsReady)
                    {
                        await Task.Delay(50, ready.Token);
                    }
                }
            }

            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90); // reconnect backoff grows to 30 s on a slow machine
            while (true)
            {
                lock (lines)
                {
                    if (lines.Count >= sent)
                    {
                        break;
                    }
                    if (DateTime.UtcNow > deadline)
                    {
                        lock (status)
                        {
                            Assert.Fail($"tail printed {lines.Count} of {sent} lines; its stderr:\n{status}");
                        }
                    }
                }
                await Task.Delay(100);
            }
            await Task.Delay(500); // anything repeated would arrive by now
            List<long> offsets;
            lock (lines)
            {
                offsets = [.. lines.Select(l => JsonNode.Parse(l)!["offset"]!.GetValue<long>())];
            }
            Assert.Equal(Enumerable.Range(1, sent).Select(i => (long)i), offsets);
        }
        finally
        {
            tail.Kill(entireProcessTree: true);
            await reading.WaitAsync(TimeSpan.FromSeconds(10));
            await statusReading.WaitAsync(TimeSpan.FromSeconds(10));
            await hub.DisposeAsync();
        }
    }

    [Fact]
    public async Task Send_history_whoami_and_status_speak_json()
    {
        var (_, regOut, regErr) = await Cli("register", "--server", Server, "--name", "alice", "--json");
        Assert.True(JsonNode.Parse(regOut) is not null, regErr);
        string[] auth = ["--server", Server, "--name", "alice", "--json"];

        var (sendCode, sendOut, sendErr) = await Cli(["send", "ops", "hello there", .. auth]);
        Assert.True(sendCode == 0, sendErr);
        Assert.Equal(1, JsonNode.Parse(sendOut)!["offset"]!.GetValue<long>());

        var (historyCode, historyOut, historyErr) = await Cli(["history", "room:ops", .. auth]);
        Assert.True(historyCode == 0, historyErr);
        var message = JsonNode.Parse(historyOut.Trim())!;
        Assert.Equal("hello there", message["body"]!.GetValue<string>());
        Assert.Equal("alice", message["from"]!.GetValue<string>());

        var (whoCode, whoOut, _) = await Cli(["whoami", .. auth]);
        Assert.Equal(0, whoCode);
        Assert.Equal("owner", JsonNode.Parse(whoOut)!["role"]!.GetValue<string>());

        var (statusCode, statusOut, _) = await Cli(["status", .. auth]);
        Assert.Equal(0, statusCode);
        var status = JsonNode.Parse(statusOut)!;
        Assert.Equal("ok", status["status"]!.GetValue<string>());
        Assert.Equal("alice", status["name"]!.GetValue<string>());

        var (noCredCode, _, noCredErr) = await Cli("send", "ops", "x", "--server", Server);
        Assert.Equal(3, noCredCode);
        Assert.Contains("auth_failed", noCredErr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Admin_verbs_speak_json_and_map_refusals_to_exit_codes()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];

        async Task<JsonNode> Json(params string[] args)
        {
            var (code, stdout, stderr) = await Cli(args);
            Assert.True(code == 0, $"parley {string.Join(' ', args)}: exit {code}: {stderr}");
            return JsonNode.Parse(stdout)!;
        }

        var key = await Json(["keys", "create", "bot", "--scope", "write", .. asAlice]);
        Assert.StartsWith("prl_", key["key"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains(key["id"]!.GetValue<string>(), (await Json(["keys", "list", .. asAlice])).ToJsonString(), StringComparison.Ordinal);
        var invite = (await Json(["invites", "create", "--role", "member", .. asAlice]))["code"]!.GetValue<string>();
        Assert.Contains(invite, (await Json(["invites", "list", .. asAlice])).ToJsonString(), StringComparison.Ordinal);
        Assert.True((await Json(["channels", "create", "ops", "--private", .. asAlice]))["private"]!.GetValue<bool>());
        Assert.Contains("room:ops", (await Json(["channels", "list", .. asAlice])).ToJsonString(), StringComparison.Ordinal);
        Assert.Contains("alice", (await Json(["admin", "users", .. asAlice])).ToJsonString(), StringComparison.Ordinal);
        Assert.NotNull((await Json(["admin", "sessions", .. asAlice]))["sessions"]);
        Assert.Contains("api_key.created", (await Json(["admin", "audit", .. asAlice])).ToJsonString(), StringComparison.Ordinal);
        Assert.Equal(0, (await Cli(["keys", "revoke", key["id"]!.GetValue<string>(), .. asAlice])).ExitCode);
        Assert.Equal(4, (await Cli(["keys", "revoke", "no-such-key", .. asAlice])).ExitCode);

        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "bob", "--invite", invite)).ExitCode);
        var (forbidden, _, forbiddenErr) = await Cli("admin", "users", "--server", Server, "--name", "bob");
        Assert.Equal(3, forbidden);
        Assert.Contains("forbidden", forbiddenErr, StringComparison.Ordinal);
        Assert.Equal(0, (await Cli(["channels", "add-member", "ops", "bob", .. asAlice])).ExitCode);
    }

    [Fact]
    public async Task A_profile_stands_in_for_server_and_name()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);

        var (addCode, addOut, addErr) = await Cli("profile", "add", "home", "--server", Server, "--name", "alice", "--json");
        Assert.True(addCode == 0, addErr);
        Assert.Equal("home", JsonNode.Parse(addOut)!["current"]!.GetValue<string>());
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_config, "parley", "profiles.json")));
        }

        var (whoCode, whoOut, whoErr) = await Cli("whoami", "--json"); // no --server, no --name
        Assert.True(whoCode == 0, whoErr);
        Assert.Equal("alice", JsonNode.Parse(whoOut)!["name"]!.GetValue<string>());

        // A key kept somewhere else: the profile says where.
        var moved = Path.Combine(_config, "elsewhere", "alice.key");
        Directory.CreateDirectory(Path.GetDirectoryName(moved)!);
        File.Move(Path.Combine(_config, "parley", "keys", "alice.key"), moved);
        Assert.Equal(0, (await Cli("logout")).ExitCode); // the stored login would stand in for the key
        var (noKey, _, noKeyErr) = await Cli("whoami", "--json");
        Assert.Equal(3, noKey);
        Assert.Contains("register first", noKeyErr, StringComparison.Ordinal);
        Assert.Equal(0, (await Cli("profile", "add", "home", "--server", Server, "--name", "alice", "--key-file", moved)).ExitCode);
        var (movedCode, movedOut, movedErr) = await Cli("whoami", "--json");
        Assert.True(movedCode == 0, movedErr);
        Assert.Equal("alice", JsonNode.Parse(movedOut)!["name"]!.GetValue<string>());

        var list = JsonNode.Parse((await Cli("profile", "list", "--json")).Stdout)!;
        Assert.Equal(moved, list["profiles"]![0]!["key_file"]!.GetValue<string>());
        Assert.True(list["profiles"]![0]!["current"]!.GetValue<bool>());
        Assert.Equal(4, (await Cli("profile", "use", "nope")).ExitCode);

        // --profile takes that profile's device key too, not the current profile's.
        Assert.Equal(0, (await Cli("profile", "add", "work", "--server", Server, "--name", "alice", "--key-file", moved)).ExitCode);
        Assert.Equal(0, (await Cli("profile", "add", "home", "--server", Server, "--name", "alice")).ExitCode);
        Assert.Equal(0, (await Cli("profile", "use", "home")).ExitCode);
        Assert.Equal(0, (await Cli("logout")).ExitCode);
        Assert.Equal(3, (await Cli("whoami", "--json")).ExitCode); // home's key is not where it says
        var (workCode, workOut, workErr) = await Cli("whoami", "--json", "--profile", "work");
        Assert.True(workCode == 0, workErr);
        Assert.Equal("alice", JsonNode.Parse(workOut)!["name"]!.GetValue<string>());
        Assert.Equal(0, (await Cli("profile", "remove", "work")).ExitCode);
        Assert.Equal(0, (await Cli("profile", "remove", "home")).ExitCode);
        Assert.Empty(JsonNode.Parse((await Cli("profile", "list", "--json")).Stdout)!["profiles"]!.AsArray());
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
