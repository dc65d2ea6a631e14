using System.Text.Json.Nodes;

namespace Parley.Server.Tests;

/// <summary><c>parley tasks</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests
{
    [Fact]
    public async Task Task_verbs_speak_json_and_a_lost_claim_exits_6()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        var invite = (await JsonCli("invites", "create", "--server", Server, "--name", "alice", "--json"))["code"]!.GetValue<string>();
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "bob", "--invite", invite)).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        string[] asBob = ["--server", Server, "--name", "bob", "--json"];

        var task = await JsonCli(["tasks", "create", "review the release notes", "--board", "ops", "--priority", "now", "--tag", "release", "--tag", "docs", .. asAlice]);
        var id = task["id"]!.GetValue<string>();
        Assert.Equal(["release", "docs"], task["tags"]!.AsArray().Select(t => t!.GetValue<string>()));

        Assert.Equal("alice", (await JsonCli(["tasks", "claim", id, "--board", "ops", .. asAlice]))["claimed_by"]!.GetValue<string>());
        var (lost, _, lostErr) = await Cli(["tasks", "claim", id, "--board", "ops", .. asBob]);
        Assert.Equal(6, lost);
        Assert.Contains("alice claimed it first", lostErr, StringComparison.Ordinal);
        Assert.Equal(3, (await Cli(["tasks", "complete", id, "--board", "ops", .. asBob])).ExitCode);

        var done = await JsonCli(["tasks", "complete", id, "--board", "ops", "--result", "looks good", .. asAlice]);
        Assert.Equal("done", done["status"]!.GetValue<string>());
        var listed = await JsonCli(["tasks", "list", "--board", "ops", "--status", "done", .. asBob]);
        Assert.Equal(id, Assert.Single(listed["tasks"]!.AsArray())!["id"]!.GetValue<string>());
        Assert.Empty((await JsonCli(["tasks", "list", .. asBob]))["tasks"]!.AsArray()); // the hub's board is another board

        var (human, humanOut, _) = await Cli("tasks", "list", "--board", "ops", "--server", Server, "--name", "bob");
        Assert.Equal(0, human);
        Assert.Contains("[now] done by alice  review the release notes  #release #docs", humanOut, StringComparison.Ordinal);
        Assert.Equal(4, (await Cli(["tasks", "claim", "t-missing", "--board", "ops", .. asBob])).ExitCode);
        Assert.Equal(1, (await Cli(["tasks", "create", "x", "--priority", "urgent", .. asBob])).ExitCode);
    }
}
