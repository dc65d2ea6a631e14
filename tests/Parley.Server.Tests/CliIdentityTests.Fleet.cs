using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>parley fleet</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests
{
    [Fact]
    public async Task Fleet_verbs_add_list_stop_and_rm_with_json_and_exit_codes()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode); // the first user: owner
        var invite = (await JsonCli("invites", "create", "--server", Server, "--name", "alice", "--json"))["code"]!.GetValue<string>();
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "bob", "--invite", invite)).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        string[] asBob = ["--server", Server, "--name", "bob", "--json"];

        var added = await JsonCli(["fleet", "add", "worker", "--env", "MODE=fast", "--env", "API_TOKEN=s3cret-value", "--restart", "on-failure", "--port", "18801", "--start",
            .. asAlice, "--", "sh", "-c", "echo started; exec sleep 30"]);
        Assert.Equal("running", added["status"]!.GetValue<string>());
        Assert.Equal("sh", added["command"]!.GetValue<string>());
        Assert.Equal(["-c", "echo started; exec sleep 30"], added["args"]!.AsArray().Select(a => a!.GetValue<string>()));
        Assert.Equal(["API_TOKEN", "MODE"], added["env_keys"]!.AsArray().Select(a => a!.GetValue<string>()));

        var listed = await JsonCli(["fleet", "list", .. asBob]);
        var worker = Assert.Single(listed["instances"]!.AsArray())!;
        Assert.Equal(("worker", "running", 18801), (worker["name"]!.GetValue<string>(), worker["status"]!.GetValue<string>(), worker["port"]!.GetValue<int>()));
        var (_, humanList, _) = await Cli("fleet", "list", "--server", Server, "--name", "bob");
        Assert.Contains("worker  running  pid ", humanList, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-value", humanList, StringComparison.Ordinal);

        Assert.Equal(3, (await Cli(["fleet", "stop", "worker", .. asBob])).ExitCode); // members watch, admins operate
        Assert.Equal(4, (await Cli(["fleet", "stop", "nobody", .. asAlice])).ExitCode);
        var (busy, _, busyErr) = await Cli(["fleet", "rm", "worker", .. asAlice]);
        Assert.Equal(6, busy); // 409: a conflict
        Assert.Contains("instance_running", busyErr, StringComparison.Ordinal);

        var stopped = await JsonCli(["fleet", "stop", "worker", .. asAlice]);
        Assert.Equal("stopped", stopped["status"]!.GetValue<string>());
        Assert.Equal("created worker-2  stopped", (await Cli("fleet", "clone", "worker", "worker-2", "--server", Server, "--name", "alice")).Stdout.Split("  restart")[0].Trim());
        Assert.Equal("worker", (await JsonCli(["fleet", "rm", "worker", .. asAlice]))["name"]!.GetValue<string>());
        Assert.Equal(4, (await Cli(["fleet", "show", "worker", .. asAlice])).ExitCode);
        Assert.Equal(["worker-2"], (await JsonCli(["fleet", "list", .. asAlice]))["instances"]!.AsArray().Select(i => i!["name"]!.GetValue<string>()));
        Assert.Equal(2, (await Cli(["fleet", "add", "bad", "--env", "NOEQUALS", .. asAlice, "--", "true"])).ExitCode);
        Assert.Equal(1, (await Cli(["fleet", "add", "Bad Name", .. asAlice, "--", "true"])).ExitCode);
        Assert.Equal(6, (await Cli(["fleet", "add", "worker-2", .. asAlice, "--", "true"])).ExitCode); // 409 instance_exists
    }

    [Fact]
    public async Task Fleet_add_terminal_runs_an_instance_on_a_hosted_terminal_that_fleet_attach_mirrors()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice"];
        var added = await JsonCli(["fleet", "add", "agent", "--terminal", "--start", .. asAlice, "--json", "--", "/bin/sh", "-c", "echo on-$(tty | cut -c1-8); sleep 1; echo done; exit 3"]);
        Assert.True(added["terminal"]!.GetValue<bool>());
        var id = added["terminal_id"]!.GetValue<string>();
        Assert.Contains($"  terminal {id}", (await Cli(["fleet", "show", "agent", .. asAlice])).Stdout, StringComparison.Ordinal);

        // Not a terminal here: the mirror shows the output so far, then what follows, and ends with the session.
        var (code, stdout, stderr) = await Cli(["fleet", "attach", "agent", .. asAlice]);
        Assert.True(code == 0, stderr);
        Assert.Contains("on-/dev/pts", stdout, StringComparison.Ordinal);
        Assert.Contains("done", stdout, StringComparison.Ordinal);
        Assert.Contains("the session ended (exit 3)", stdout, StringComparison.Ordinal);

        Assert.Equal(0, (await Cli(["fleet", "add", "piped", .. asAlice, "--", "/bin/true"])).ExitCode);
        var (piped, _, pipedErr) = await Cli(["fleet", "attach", "piped", .. asAlice]);
        Assert.Equal(1, piped);
        Assert.Contains("does not run under a terminal", pipedErr, StringComparison.Ordinal);
        Assert.Equal(4, (await Cli(["fleet", "attach", "nobody", .. asAlice])).ExitCode);
    }

    [Fact]
    public async Task Fleet_logs_prints_the_newest_lines_and_follows_new_ones()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        Assert.Equal(0, (await Cli(["fleet", "add", "ticker", "--start", .. asAlice, "--", "/bin/sh", "-c", "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 0.05; done"])).ExitCode);
        await Task.Delay(600);

        var recent = await JsonCli(["fleet", "logs", "ticker", "--tail", "3", .. asAlice]);
        Assert.Equal(3, recent["count"]!.GetValue<int>());
        Assert.Contains(" stdout tick-", recent["lines"]![2]!.GetValue<string>(), StringComparison.Ordinal);

        using var follow = HubProcess.StartCli(_env, ["fleet", "logs", "ticker", "-f", "--tail", "1", .. asAlice]);
        try
        {
            var seen = new List<string>();
            using var timeout = new CancellationTokenSource(Limit);
            while (seen.Count < 5)
            {
                var line = await follow.StandardOutput.ReadLineAsync(timeout.Token);
                Assert.NotNull(line);
                seen.Add(JsonNode.Parse(line)!["line"]!.GetValue<string>());
            }
            Assert.Equal(seen.Count, seen.Distinct().Count()); // the backlog line and live lines, none twice
            Assert.All(seen, l => Assert.Contains(" tick-", l, StringComparison.Ordinal));
        }
        finally
        {
            follow.Kill(entireProcessTree: true);
        }
        Assert.Equal(4, (await Cli(["fleet", "logs", "nobody", .. asAlice])).ExitCode);
        Assert.Equal(0, (await Cli(["fleet", "stop", "ticker", .. asAlice])).ExitCode);
    }

    [Fact]
    public async Task Fleet_watch_prints_the_snapshot_then_changes_and_summarises_a_burst()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        Assert.Equal(0, (await Cli(["fleet", "add", "steady", .. asAlice, "--", "/bin/sh", "-c", "exec sleep 30"])).ExitCode);

        using var watch = HubProcess.StartCli(_env, ["fleet", "watch", .. asAlice]);
        try
        {
            using var timeout = new CancellationTokenSource(Limit);
            async Task<JsonNode> NextAsync(Func<JsonNode, bool> match)
            {
                while (true)
                {
                    var line = await watch.StandardOutput.ReadLineAsync(timeout.Token);
                    Assert.NotNull(line);
                    var json = JsonNode.Parse(line)!;
                    if (match(json))
                    {
                        return json;
                    }
                }
            }

            var snapshot = await NextAsync(j => j["type"]!.GetValue<string>() == "snapshot");
            Assert.Equal("steady", snapshot["instances"]![0]!["name"]!.GetValue<string>());

            Assert.Equal(0, (await Cli(["fleet", "add", "flappy", .. asAlice, "--", "/bin/sh", "-c", "exec sleep 30"])).ExitCode);
            Assert.Equal("flappy", (await NextAsync(j => j["type"]!.GetValue<string>() == "instance_created"))["name"]!.GetValue<string>());
            for (var i = 0; i < 3; i++) // each start and stop is several status changes
            {
                Assert.Equal(0, (await Cli(["fleet", "start", "flappy", .. asAlice])).ExitCode);
                Assert.Equal(0, (await Cli(["fleet", "stop", "flappy", .. asAlice])).ExitCode);
            }
            var burst = await NextAsync(j => j["type"]!.GetValue<string>() == "burst");
            Assert.Equal("flappy", burst["name"]!.GetValue<string>());
            Assert.True(burst["changes"]!.GetValue<int>() > FleetBurstChanges);
        }
        finally
        {
            watch.Kill(entireProcessTree: true);
        }
    }

    private const int FleetBurstChanges = 5;
}
