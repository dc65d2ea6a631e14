namespace Parley.Server.Tests;

/// <summary><c>parley groups</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests
{
    [Fact]
    public async Task Groups_verbs_speak_json_and_map_refusals_to_exit_codes()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        var invite = (await JsonCli(["invites", "create", .. asAlice]))["code"]!.GetValue<string>();
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "bob", "--invite", invite)).ExitCode);
        string[] asBob = ["--server", Server, "--name", "bob", "--json"];

        Assert.Equal("team", (await JsonCli(["groups", "create", "@team", .. asAlice]))["name"]!.GetValue<string>());
        await JsonCli(["groups", "create", "team/backend", .. asAlice]);
        Assert.True((await JsonCli(["groups", "add", "@team/backend", "bob", "--lead", .. asAlice]))["lead"]!.GetValue<bool>());

        var backend = await JsonCli(["groups", "show", "team/backend", .. asBob]);
        var member = Assert.Single(backend["members"]!.AsArray())!;
        Assert.Equal("bob", member["name"]!.GetValue<string>());
        Assert.True(member["lead"]!.GetValue<bool>());
        var team = await JsonCli(["groups", "show", "@team", .. asBob]);
        Assert.Equal("team/backend", Assert.Single(team["subgroups"]!.AsArray())!.GetValue<string>());
        Assert.Equal("bob", Assert.Single(team["expanded"]!.AsArray())!.GetValue<string>());
        Assert.Equal(2, (await JsonCli(["groups", "list", .. asBob]))["groups"]!.AsArray().Count);

        // bob leads @team/backend: he creates below it, but not at the top or in @team itself.
        Assert.Equal("team/backend/db", (await JsonCli(["groups", "create", "@team/backend/db", .. asBob]))["name"]!.GetValue<string>());
        var (forbidden, _, forbiddenErr) = await Cli(["groups", "create", "mine", .. asBob]);
        Assert.Equal(3, forbidden);
        Assert.Contains("forbidden", forbiddenErr, StringComparison.Ordinal);
        Assert.Equal(3, (await Cli(["groups", "add", "team", "bob", .. asBob])).ExitCode);
        var (missing, _, missingErr) = await Cli(["groups", "show", "@nope", .. asBob]);
        Assert.Equal(4, missing);
        Assert.Contains("group_not_found", missingErr, StringComparison.Ordinal);
        var (hasSubgroups, _, hasSubgroupsErr) = await Cli(["groups", "delete", "team", .. asAlice]);
        Assert.Equal(6, hasSubgroups); // 409: a conflict
        Assert.Contains("group_has_subgroups", hasSubgroupsErr, StringComparison.Ordinal);
        Assert.Equal(1, (await Cli(["groups", "create", "Bad", .. asAlice])).ExitCode);

        var (humanCode, human, _) = await Cli("groups", "show", "team", "--server", Server, "--name", "bob");
        Assert.Equal(0, humanCode);
        Assert.Contains("@team, created by alice", human, StringComparison.Ordinal);
        Assert.Contains("subgroups: @team/backend", human, StringComparison.Ordinal);
        Assert.Contains("reaches 1 user(s): bob", human, StringComparison.Ordinal);

        Assert.True((await JsonCli(["groups", "remove", "team/backend", "bob", .. asAlice]))["removed"]!.GetValue<bool>());
        Assert.Equal(4, (await Cli(["groups", "remove", "team/backend", "bob", .. asAlice])).ExitCode);
        Assert.True((await JsonCli(["groups", "delete", "@team/backend/db", .. asAlice]))["deleted"]!.GetValue<bool>());
        Assert.Empty((await JsonCli(["groups", "show", "team/backend", .. asAlice]))["expanded"]!.AsArray());
    }
}
