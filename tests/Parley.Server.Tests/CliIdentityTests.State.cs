using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>parley state</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests
{
    [Fact]
    public async Task State_verbs_speak_json_map_refusals_to_exit_codes_and_watch_prints_changes()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];

        var set = await JsonCli(["state", "set", "ci", "build/main", "{\"green\":true}", "--expect-version", "0", .. asAlice]);
        Assert.Equal(1, set["version"]!.GetValue<long>());
        var (conflict, _, conflictErr) = await Cli(["state", "set", "ci", "build/main", "{\"green\":false}", "--expect-version", "0", .. asAlice]);
        Assert.Equal(6, conflict);
        Assert.Contains("version_conflict", conflictErr, StringComparison.Ordinal);
        Assert.Equal(0, (await Cli(["state", "set", "ci", "owner", "alice the great", .. asAlice])).ExitCode); // not JSON: a string

        var (getCode, getOut, getErr) = await Cli("state", "get", "ci", "owner", "--server", Server, "--name", "alice");
        Assert.True(getCode == 0, getErr);
        Assert.Equal("\"alice the great\"", getOut.Trim());
        var entry = await JsonCli(["state", "get", "ci", "build/main", .. asAlice]);
        Assert.True(entry["value"]!["green"]!.GetValue<bool>());
        Assert.Equal("alice", entry["author"]!.GetValue<string>());
        Assert.Equal(4, (await Cli(["state", "get", "ci", "nope", .. asAlice])).ExitCode);

        var listed = await JsonCli(["state", "list", "ci", "--prefix", "build/", .. asAlice]);
        Assert.Equal("build/main", Assert.Single(listed["entries"]!.AsArray())!["key"]!.GetValue<string>());

        using var watch = HubProcess.StartCli(_env, ["state", "watch", "ci", .. asAlice]);
        try
        {
            var snapshot = JsonNode.Parse((await watch.StandardOutput.ReadLineAsync().WaitAsync(Limit))!)!;
            Assert.Equal("snapshot", snapshot["type"]!.GetValue<string>());
            Assert.Equal(2, snapshot["entries"]!.AsArray().Count);
            Assert.Equal(0, (await Cli(["state", "del", "ci", "owner", "--expect-version", "1", .. asAlice])).ExitCode);
            var change = JsonNode.Parse((await watch.StandardOutput.ReadLineAsync().WaitAsync(Limit))!)!;
            Assert.Equal("change", change["type"]!.GetValue<string>());
            Assert.Equal("delete", change["op"]!.GetValue<string>());
            Assert.Equal("owner", change["key"]!.GetValue<string>());
            Assert.Equal(snapshot["revision"]!.GetValue<long>() + 1, change["revision"]!.GetValue<long>());
        }
        finally
        {
            watch.Kill(entireProcessTree: true);
        }
        Assert.Equal(4, (await Cli(["state", "del", "ci", "owner", .. asAlice])).ExitCode);
        Assert.Equal(1, (await Cli(["state", "get", "bad ns", "k", .. asAlice])).ExitCode);
    }
}
