using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Stored logins, <c>logout</c>, <c>doctor</c> and <c>channels info|members</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests
{
    private string SessionFile(string user) => Path.Combine(_config, "parley", "sessions", $"{user}@127.0.0.1_{_hub.BaseUrl.Port}.json");

    private async Task<JsonNode> JsonCli(params string[] args)
    {
        var (code, stdout, stderr) = await Cli(args);
        Assert.True(code == 0, $"parley {string.Join(' ', args)}: exit {code}: {stderr}");
        return JsonNode.Parse(stdout)!;
    }

    private async Task<List<string>> AuditEventsAsync(params string[] auth)
    {
        var entries = (await JsonCli(["admin", "audit", "--limit", "1000", .. auth]))["entries"]!.AsArray();
        return [.. entries.Select(e => e!["event"]!.GetValue<string>())];
    }

    [Fact]
    public async Task A_stored_login_is_reused_renewed_once_under_concurrency_and_ended_by_logout()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];

        var (loginCode, loginOut, loginErr) = await Cli("login", "--server", Server, "--name", "alice");
        Assert.True(loginCode == 0, loginErr);
        Assert.DoesNotContain("eyJ", loginOut, StringComparison.Ordinal);
        Assert.True(File.Exists(SessionFile("alice")));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(SessionFile("alice")));
        }

        // Verbs reuse the stored access token: no new device-key login.
        Assert.Equal("alice", (await JsonCli(["whoami", .. asAlice]))["name"]!.GetValue<string>());
        Assert.Equal(0, (await Cli(["send", "ops", "hi", .. asAlice])).ExitCode);
        Assert.Single(await AuditEventsAsync(asAlice), e => e == "login");

        // An access token about to expire is renewed with the refresh token, by one process only, even
        // when several verbs start at once (a refresh token presented twice would revoke the login).
        var stored = JsonNode.Parse(await File.ReadAllTextAsync(SessionFile("alice")))!.AsObject();
        var firstRefresh = stored["refresh_token"]!.GetValue<string>();
        stored["expires_at"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        await File.WriteAllTextAsync(SessionFile("alice"), stored.ToJsonString());
        var racing = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Cli(["whoami", .. asAlice])));
        Assert.All(racing, r => Assert.True(r.ExitCode == 0, r.Stderr));
        var events = await AuditEventsAsync(asAlice);
        Assert.Single(events, e => e == "login");
        Assert.DoesNotContain("refresh.reused", events);
        var renewed = JsonNode.Parse(await File.ReadAllTextAsync(SessionFile("alice")))!["refresh_token"]!.GetValue<string>();
        Assert.NotEqual(firstRefresh, renewed);

        var loggedOut = await JsonCli(["logout", .. asAlice]);
        Assert.True(loggedOut["was_logged_in"]!.GetValue<bool>());
        Assert.False(File.Exists(SessionFile("alice")));
        using (var http = new HttpClient { BaseAddress = _hub.BaseUrl })
        {
            using var refused = await http.PostAsJsonAsync("/api/auth/refresh", new { refresh_token = renewed });
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode); // the hub revoked the login, not just this machine
        }
        Assert.False((await JsonCli(["logout", .. asAlice]))["was_logged_in"]!.GetValue<bool>());

        // The device key still works: the next verb logs in afresh.
        Assert.Equal("alice", (await JsonCli(["whoami", .. asAlice]))["name"]!.GetValue<string>());
        var after = await AuditEventsAsync(asAlice);
        Assert.Contains("logout", after);
        Assert.Equal(2, after.Count(e => e == "login"));
    }

    [Fact]
    public async Task Doctor_passes_on_a_good_setup_and_says_how_to_fix_a_readable_key_or_a_missing_hub()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);

        var report = await JsonCli("doctor", "--server", Server, "--name", "alice", "--json");
        Assert.True(report["ok"]!.GetValue<bool>(), report.ToJsonString());
        var checks = report["checks"]!.AsArray().ToDictionary(c => c!["check"]!.GetValue<string>(), c => c!);
        foreach (var name in new[] { "config", "server", "hub", "clock", "device key", "login", "identity" })
        {
            Assert.True(checks.ContainsKey(name), $"no '{name}' check in {report.ToJsonString()}");
            Assert.NotEqual("fail", checks[name]["status"]!.GetValue<string>());
        }
        Assert.Contains("alice (owner)", checks["identity"]["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        if (!OperatingSystem.IsWindows())
        {
            var keyFile = Path.Combine(_config, "parley", "keys", "alice.key");
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
            var (code, stdout, _) = await Cli("doctor", "--server", Server, "--name", "alice");
            Assert.Equal(1, code);
            Assert.Contains("FAIL  device key", stdout, StringComparison.Ordinal);
            Assert.Contains("fix: chmod 600", stdout, StringComparison.Ordinal);
        }

        var (downCode, downOut, _) = await Cli("doctor", "--server", $"http://127.0.0.1:{HubProcess.FreePort()}", "--json");
        Assert.Equal(1, downCode);
        var hub = JsonNode.Parse(downOut)!["checks"]!.AsArray().Single(c => c!["check"]!.GetValue<string>() == "hub")!;
        Assert.Equal("fail", hub["status"]!.GetValue<string>());
        Assert.Contains("parley serve", hub["fix"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Channels_info_and_members_show_what_the_caller_may_see()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        Assert.Equal(0, (await Cli(["channels", "create", "ops", "--private", .. asAlice])).ExitCode);
        Assert.Equal(0, (await Cli(["send", "ops", "one", .. asAlice])).ExitCode);
        Assert.Equal(0, (await Cli(["send", "ops", "two", .. asAlice])).ExitCode);

        var info = await JsonCli(["channels", "info", "ops", .. asAlice]);
        Assert.Equal("room:ops", info["topic"]!.GetValue<string>());
        Assert.True(info["private"]!.GetValue<bool>());
        Assert.True(info["registered"]!.GetValue<bool>());
        Assert.Equal("alice", info["created_by"]!.GetValue<string>());
        Assert.Equal(2, info["head"]!.GetValue<long>());
        Assert.False(string.IsNullOrEmpty(info["epoch"]!.GetValue<string>()));
        var members = (await JsonCli(["channels", "members", "ops", .. asAlice]))["members"]!.AsArray();
        var alice = Assert.Single(members)!;
        Assert.Equal("alice", alice["name"]!.GetValue<string>());
        Assert.True(alice["admin"]!.GetValue<bool>());

        var (human, humanOut, _) = await Cli("channels", "info", "ops", "--server", Server, "--name", "alice");
        Assert.Equal(0, human);
        Assert.Contains("history head 2", humanOut, StringComparison.Ordinal);

        var open = await JsonCli(["channels", "info", "lounge", .. asAlice]);
        Assert.False(open["registered"]!.GetValue<bool>());
        Assert.Equal(0, open["head"]!.GetValue<long>());
        Assert.Equal(4, (await Cli(["channels", "members", "lounge", .. asAlice])).ExitCode);

        var invite = (await JsonCli(["invites", "create", .. asAlice]))["code"]!.GetValue<string>();
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "bob", "--invite", invite)).ExitCode);
        var (forbidden, _, forbiddenErr) = await Cli("channels", "info", "ops", "--server", Server, "--name", "bob");
        Assert.Equal(3, forbidden);
        Assert.Contains("ask one of its admins", forbiddenErr, StringComparison.Ordinal);
        var (invalid, _, invalidErr) = await Cli("channels", "info", "bad topic!", "--server", Server, "--name", "bob");
        Assert.Equal(1, invalid);
        Assert.Contains("invalid_topic", invalidErr, StringComparison.Ordinal);
    }
}
