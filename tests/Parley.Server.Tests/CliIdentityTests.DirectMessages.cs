using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>parley whisper</c>, <c>inbox</c>, <c>ack</c> and <c>status ID</c> as processes against a real hub.</summary>
public sealed partial class CliIdentityTests
{
    [Fact]
    public async Task Whisper_inbox_ack_and_status_speak_json_and_inbox_wait_blocks_until_a_message()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        var invite = (await JsonCli("invites", "create", "--max-uses", "2", "--server", Server, "--name", "alice", "--json"))["code"]!.GetValue<string>();
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "bob", "--invite", invite)).ExitCode);
        string[] asAlice = ["--server", Server, "--name", "alice", "--json"];
        string[] asBob = ["--server", Server, "--name", "bob", "--json"];

        var sent = await JsonCli(["whisper", "bob", "can you review #42?", "--priority", "now", .. asAlice]);
        var id = sent["id"]!.GetValue<string>();
        Assert.Equal("bob", Assert.Single(sent["recipients"]!.AsArray())!.GetValue<string>());
        var queued = await JsonCli(["status", id, .. asAlice]);
        Assert.Equal("queued", queued["recipients"]![0]!["state"]!.GetValue<string>());

        var (inboxCode, inboxOut, inboxErr) = await Cli(["inbox", "--ack", .. asBob]);
        Assert.True(inboxCode == 0, inboxErr);
        var message = JsonNode.Parse(inboxOut.Trim())!;
        Assert.Equal("can you review #42?", message["body"]!.GetValue<string>());
        Assert.Equal("alice", message["from"]!.GetValue<string>());
        Assert.Equal("read", (await JsonCli(["status", id, .. asAlice]))["recipients"]![0]!["state"]!.GetValue<string>());
        Assert.Equal("(no unread messages)", (await Cli("inbox", "--server", Server, "--name", "bob")).Stdout.Trim());

        using var waiting = HubProcess.StartCli(_env, ["inbox", "--wait", .. asBob]);
        try
        {
            var line = waiting.StandardOutput.ReadLineAsync();
            await Task.Delay(1500);
            Assert.False(line.IsCompleted, "inbox --wait returned before anything arrived");
            var second = (await JsonCli(["whisper", "bob", "ping", .. asAlice]))["id"]!.GetValue<string>();
            var arrived = JsonNode.Parse((await line.WaitAsync(Limit))!)!;
            Assert.Equal(second, arrived["id"]!.GetValue<string>());
            Assert.True(await Task.Run(() => waiting.WaitForExit(20_000)));
            Assert.Equal(0, waiting.ExitCode);
            Assert.Equal(1, (await JsonCli(["ack", second, .. asBob]))["read"]!.GetValue<int>());
        }
        finally
        {
            waiting.Kill(entireProcessTree: true);
        }

        Assert.Equal(4, (await Cli(["whisper", "nobody", "hi", .. asAlice])).ExitCode);
        Assert.Equal(4, (await Cli(["status", id, .. asBob])).ExitCode); // only the sender sees a message's status
        var (hubStatus, hubOut, _) = await Cli(["status", .. asAlice]);
        Assert.Equal(0, hubStatus);
        Assert.Equal("ok", JsonNode.Parse(hubOut)!["status"]!.GetValue<string>()); // without an id: the hub's status
    }

    [Fact]
    public async Task A_tailing_cli_shows_in_peers_as_a_cli_client()
    {
        Assert.Equal(0, (await Cli("register", "--server", Server, "--name", "alice")).ExitCode);
        using var tail = HubProcess.StartCli(_env, "tail", "ops", "--server", Server, "--name", "alice");
        try
        {
            var deadline = DateTime.UtcNow + Limit;
            while (await tail.StandardError.ReadLineAsync().WaitAsync(Limit) is { } line && !line.Contains("following", StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, "tail did not start following");
            }
            var peers = await JsonCli("peers", "--channel", "ops", "--server", Server, "--name", "alice", "--json");
            var meta = peers["topics"]![0]!["presences"]!["alice"]!["metas"]![0]!;
            Assert.Equal("cli", meta["client"]!.GetValue<string>());
        }
        finally
        {
            tail.Kill(entireProcessTree: true);
        }
    }
}
