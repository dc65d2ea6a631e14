using System.Text.Json.Nodes;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary><c>parley peers</c> as a process: JSON output, and a private channel's presence refused to non-members.</summary>
public sealed partial class CliIdentityTests
{
    private async Task<string> PeersOkAsync(params string[] args)
    {
        var (code, stdout, stderr) = await Cli(args);
        Assert.True(code == 0, $"parley {string.Join(' ', args)}: exit {code}: {stderr}");
        return stdout;
    }

    private async Task<RawWebSocket> SocketAsync(string user, string client)
    {
        var token = JsonNode.Parse(await PeersOkAsync("login", "--server", Server, "--name", user, "--json"))!["access_token"]!.GetValue<string>();
        return await RawWebSocket.ConnectAsync(_hub.BaseUrl, $"/socket/websocket?vsn=2.0.0&client={client}&token={Uri.EscapeDataString(token)}");
    }

    [Fact]
    public async Task Peers_lists_who_is_where_as_json_and_refuses_a_private_channel_to_non_members()
    {
        await PeersOkAsync("register", "--server", Server, "--name", "alice");
        string[] asAlice = ["--server", Server, "--name", "alice"];
        string[] asBob = ["--server", Server, "--name", "bob"];
        await PeersOkAsync(["channels", "create", "ops", "--private", .. asAlice]);
        var invite = JsonNode.Parse(await PeersOkAsync(["invites", "create", "--role", "member", "--json", .. asAlice]))!["code"]!.GetValue<string>();
        await PeersOkAsync("register", "--server", Server, "--name", "bob", "--invite", invite);

        await using var alice = await SocketAsync("alice", "agent");
        await alice.JoinAsync("room:ops");
        await alice.JoinAsync("room:pub");
        await alice.JoinAsync("hub:lobby");
        var update = await alice.ReadReplyAsync(await alice.PushAsync("3", "hub:lobby", "presence.update", new { status = "working", summary = "triaging the queue" }));
        Assert.Equal("ok", update.Payload_!["status"]!.GetValue<string>());
        await using var bob = await SocketAsync("bob", "cli");
        await bob.JoinAsync("room:pub");

        var all = JsonNode.Parse(await PeersOkAsync(["peers", "--json", .. asAlice]))!;
        var topics = all["topics"]!.AsArray().ToDictionary(t => t!["topic"]!.GetValue<string>(), t => t!["presences"]!.AsObject());
        Assert.Equal(["room:ops", "room:pub"], topics.Keys.Order());
        var aliceOnOps = topics["room:ops"]["alice"]!["metas"]!.AsArray().Single()!;
        Assert.Equal("working", aliceOnOps["status"]!.GetValue<string>());
        Assert.Equal("triaging the queue", aliceOnOps["summary"]!.GetValue<string>());
        Assert.Equal("agent", aliceOnOps["client"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(aliceOnOps["phx_ref"]!.GetValue<string>()));
        Assert.True(aliceOnOps["online_at"]!.GetValue<long>() > 1_600_000_000_000);
        Assert.Equal(["alice", "bob"], topics["room:pub"].Select(p => p.Key).Order());
        Assert.Equal("idle", topics["room:pub"]["bob"]!["metas"]![0]!["status"]!.GetValue<string>());
        Assert.Equal("cli", topics["room:pub"]["bob"]!["metas"]![0]!["client"]!.GetValue<string>());

        // Bob sees the public room but not the private one, and asking for it is refused (exit 3).
        var bobs = JsonNode.Parse(await PeersOkAsync(["peers", "--json", .. asBob]))!;
        Assert.Equal(["room:pub"], bobs["topics"]!.AsArray().Select(t => t!["topic"]!.GetValue<string>()));
        var (refused, refusedOut, refusedErr) = await Cli(["peers", "--channel", "ops", .. asBob]);
        Assert.Equal(3, refused);
        Assert.Empty(refusedOut);
        Assert.Contains("forbidden", refusedErr, StringComparison.Ordinal);
        Assert.Contains("private", refusedErr, StringComparison.Ordinal);
        Assert.DoesNotContain("alice", refusedErr, StringComparison.Ordinal);

        // The human form: one line per user with status, client kinds and summary.
        var human = await PeersOkAsync(["peers", "--channel", "pub", .. asAlice]);
        Assert.Contains("room:pub", human, StringComparison.Ordinal);
        Assert.Matches(@"alice\s+working\s+agent\s+triaging the queue", human);
        Assert.Matches(@"bob\s+idle\s+cli", human);

        // Without a credential the hub says what to do.
        var (anonymous, _, anonymousErr) = await Cli("peers", "--server", Server);
        Assert.Equal(3, anonymous);
        Assert.Contains("unauthenticated", anonymousErr, StringComparison.Ordinal);

        // Gone from the list once the socket closes.
        await bob.DisposeAsync();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (JsonNode.Parse(await PeersOkAsync(["peers", "--channel", "pub", "--json", .. asAlice]))!["topics"]![0]!["presences"]!.AsObject().ContainsKey("bob"))
        {
            Assert.True(DateTime.UtcNow < deadline, "bob is still listed 10 s after his socket closed");
            await Task.Delay(100);
        }
    }
}
