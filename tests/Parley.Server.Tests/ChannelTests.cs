using System.Net;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Public and private channels: who may join, and live effects of access changes.</summary>
public sealed class ChannelTests : IAsyncLifetime
{
    private TestHub _hub = null!;
    private IdentityClient _id = null!;
    private string _mia = null!;
    private string _bob = null!;
    private string _gina = null!;

    public async Task InitializeAsync()
    {
        _hub = await TestHub.StartAsync(configureServer: o => o.InsecureNoAuth = false);
        _id = await IdentityClient.ForAsync(_hub);
        await _id.RegisterAsync("owner1");
        _mia = (await _id.LoginAsync(await _id.RegisterAsync("mia"))).AccessToken;
        _bob = (await _id.LoginAsync(await _id.RegisterAsync("bob"))).AccessToken;
        _gina = (await _id.LoginAsync(await _id.RegisterAsync("gina", "guest"))).AccessToken;
    }

    public async Task DisposeAsync()
    {
        _id.Dispose();
        await _hub.DisposeAsync();
    }

    private static async Task<ServerFrame> TryJoinAsync(RawWebSocket socket, string topic)
    {
        var joinRef = await socket.PushAsync(null, topic, "phx_join", new { });
        return await socket.ReadReplyAsync(joinRef);
    }

    [Fact]
    public async Task A_member_is_refused_on_a_private_channel_until_added()
    {
        var created = await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:secret", @private = true }, bearer: _mia, expect: HttpStatusCode.Created);
        Assert.True(created["private"]!.GetValue<bool>());

        await using var bob = await _id.ConnectAsync(_bob);
        var refused = await TryJoinAsync(bob, "room:secret");
        Assert.Equal("error", refused.Status());
        Assert.Equal("forbidden", refused.Reason());

        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:secret/members", new { user = "bob" }, bearer: _mia);
        Assert.Equal("ok", (await TryJoinAsync(bob, "room:secret")).Status());

        // Listing shows private channels only to their members (and admins).
        await using var gina = await _id.ConnectAsync(_gina);
        var ginaList = await _id.CallAsync(HttpMethod.Get, "/api/channels", bearer: _gina);
        Assert.DoesNotContain("room:secret", ginaList.ToJsonString(), StringComparison.Ordinal);
        var bobList = await _id.CallAsync(HttpMethod.Get, "/api/channels", bearer: _bob);
        Assert.Contains("room:secret", bobList.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Removing_a_member_or_making_a_channel_private_removes_live_subscribers()
    {
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:team" }, bearer: _mia, expect: HttpStatusCode.Created);
        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:team/members", new { user = "bob" }, bearer: _mia);
        await using var bob = await _id.ConnectAsync(_bob);
        await using var gina = await _id.ConnectAsync(_gina);
        await bob.JoinAsync("room:team");
        await gina.JoinAsync("room:team"); // public: guests may read

        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:team/visibility", new { @private = true }, bearer: _mia);
        var ginaClose = await gina.ReadUntilAsync(f => f.Event == "phx_close" && f.Topic == "room:team");
        Assert.Equal("room:team", ginaClose.Topic);

        await _id.CallAsync(HttpMethod.Delete, "/api/channels/room:team/members/bob", bearer: _mia);
        await bob.ReadUntilAsync(f => f.Event == "phx_close" && f.Topic == "room:team");
        Assert.Equal("forbidden", (await TryJoinAsync(bob, "room:team")).Reason());
    }

    [Fact]
    public async Task Only_channel_admins_and_hub_admins_manage_a_channel_and_guests_cannot_create()
    {
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:mine", @private = true }, bearer: _mia, expect: HttpStatusCode.Created);

        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:mine/members", new { user = "bob" }, bearer: _bob, expect: HttpStatusCode.Forbidden);
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:guest" }, bearer: _gina, expect: HttpStatusCode.Forbidden);
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:mine" }, bearer: _bob, expect: HttpStatusCode.Conflict);
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "nope" }, bearer: _bob, expect: HttpStatusCode.BadRequest);
        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:mine/members", new { user = "ghost" }, bearer: _mia, expect: HttpStatusCode.NotFound);

        // A hub admin (the owner key) manages any channel and may join private ones.
        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:mine/members", new { user = "bob", admin = true });
        await using var owner = await _id.ConnectAsync(_id.OwnerKey);
        Assert.Equal("ok", (await TryJoinAsync(owner, "room:mine")).Status());
    }

    [Fact]
    public async Task A_deleted_channel_closes_its_subscribers_and_cannot_be_joined_or_recreated()
    {
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:old" }, bearer: _mia, expect: HttpStatusCode.Created);
        await using var bob = await _id.ConnectAsync(_bob);
        await bob.JoinAsync("room:old");

        await _id.CallAsync(HttpMethod.Delete, "/api/channels/room:old", bearer: _mia);

        await bob.ReadUntilAsync(f => f.Event == "phx_close" && f.Topic == "room:old");
        Assert.Equal("forbidden", (await TryJoinAsync(bob, "room:old")).Reason());
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:old" }, bearer: _mia, expect: HttpStatusCode.Conflict);
        await _id.CallAsync(HttpMethod.Delete, "/api/channels/room:old", bearer: _mia, expect: HttpStatusCode.Gone);
    }

    [Fact]
    public async Task Channel_and_admin_operations_work_as_hub_lobby_pushes()
    {
        await using var admin = await _id.ConnectAsync(_id.OwnerKey);
        await admin.JoinAsync("hub:lobby");
        await using var mia = await _id.ConnectAsync(_mia);
        await mia.JoinAsync("hub:lobby");
        await using var bob = await _id.ConnectAsync(_bob);
        await bob.JoinAsync("room:general");

        var created = await admin.ReadReplyAsync(await admin.PushAsync(null, "hub:lobby", "channel.create", new { topic = "room:lobbyops", @private = true }));
        Assert.Equal("ok", created.Status());
        Assert.True(created.Response()["private"]!.GetValue<bool>());
        var added = await admin.ReadReplyAsync(await admin.PushAsync(null, "hub:lobby", "channel.add_member", new { topic = "room:lobbyops", user = "mia" }));
        Assert.Equal("ok", added.Status());
        var listed = await mia.ReadReplyAsync(await mia.PushAsync(null, "hub:lobby", "channel.list", new { }));
        Assert.Contains("room:lobbyops", listed.Text, StringComparison.Ordinal);

        var sessions = await admin.ReadReplyAsync(await admin.PushAsync(null, "hub:lobby", "admin.sessions", new { }));
        Assert.Contains("\"bob\"", sessions.Text, StringComparison.Ordinal);

        var denied = await mia.ReadReplyAsync(await mia.PushAsync(null, "hub:lobby", "admin.kick", new { user = "bob" }));
        Assert.Equal("forbidden", denied.Reason());
        var missing = await admin.ReadReplyAsync(await admin.PushAsync(null, "hub:lobby", "admin.kick", new { }));
        Assert.Equal("invalid_payload", missing.Reason());
        var unknown = await admin.ReadReplyAsync(await admin.PushAsync(null, "hub:lobby", "admin.explode", new { }));
        Assert.Equal("unknown_event", unknown.Reason());

        var kicked = await admin.ReadReplyAsync(await admin.PushAsync(null, "hub:lobby", "admin.kick", new { user = "bob" }));
        Assert.Equal("ok", kicked.Status());
        Assert.Equal(4409, (await bob.ReadCloseAsync(TimeSpan.FromSeconds(1))).CloseCode);
    }

    [Fact]
    public async Task Renaming_a_channel_moves_its_history_and_rules_and_closes_the_old_name()
    {
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:before", @private = true }, bearer: _mia, expect: HttpStatusCode.Created);
        await using var mia = await _id.ConnectAsync(_mia);
        await mia.JoinAsync("room:before");
        Assert.Equal("ok", (await mia.ReadReplyAsync(await mia.PushAsync(null, "room:before", "msg", new { body = "kept" }))).Status());

        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:before/rename", new { topic = "room:after" }, bearer: _mia);

        await mia.ReadUntilAsync(f => f.Event == "phx_close" && f.Topic == "room:before");
        var joined = await mia.JoinAsync("room:after", new { since = 0 });
        Assert.Equal(1, joined["offset"]!.GetValue<long>());
        var replayed = await mia.ReadUntilAsync(f => f.Event == "msg" && f.Topic == "room:after");
        Assert.Equal("kept", replayed.Payload_!["body"]!.GetValue<string>());
        var pushed = await mia.ReadReplyAsync(await mia.PushAsync(null, "room:after", "msg", new { body = "next" }));
        Assert.Equal(2, pushed.Response()["offset"]!.GetValue<long>());

        // The rules moved too: still private, bob is still out.
        await using var bob = await _id.ConnectAsync(_bob);
        Assert.Equal("forbidden", (await TryJoinAsync(bob, "room:after")).Reason());

        // A name that is registered or has history is refused.
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:taken" }, bearer: _mia, expect: HttpStatusCode.Created);
        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:after/rename", new { topic = "room:taken" }, bearer: _mia, expect: HttpStatusCode.Conflict);
        await using (var writer = await _id.ConnectAsync(_bob))
        {
            await writer.JoinAsync("room:busy");
            await writer.ReadReplyAsync(await writer.PushAsync(null, "room:busy", "msg", new { body = "x" }));
        }
        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:after/rename", new { topic = "room:busy" }, bearer: _mia, expect: HttpStatusCode.Conflict);
        await _id.CallAsync(HttpMethod.Post, "/api/channels/room:after/rename", new { topic = "room:after2" }, bearer: _bob, expect: HttpStatusCode.Forbidden);
    }

    [Fact]
    public async Task Registering_a_busy_topic_as_private_removes_the_non_members_already_there()
    {
        await using var gina = await _id.ConnectAsync(_gina);
        await gina.JoinAsync("room:busy");

        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:busy", @private = true }, bearer: _mia, expect: HttpStatusCode.Created);

        await gina.ReadUntilAsync(f => f.Event == "phx_close" && f.Topic == "room:busy");
        Assert.Equal("forbidden", (await TryJoinAsync(gina, "room:busy")).Reason());
    }

    [Fact]
    public async Task A_demoted_admin_leaves_private_channels_only_admins_could_enter()
    {
        await _id.CallAsync(HttpMethod.Post, "/api/users/bob/role", new { role = "admin" });
        await _id.CallAsync(HttpMethod.Post, "/api/channels", new { topic = "room:staff", @private = true }, bearer: _mia, expect: HttpStatusCode.Created);
        await using var bob = await _id.ConnectAsync(_bob); // the role is read at connect: bob is an admin now
        Assert.Equal("ok", (await TryJoinAsync(bob, "room:staff")).Status());

        await _id.CallAsync(HttpMethod.Post, "/api/users/bob/role", new { role = "member" });

        await bob.ReadUntilAsync(f => f.Event == "phx_close" && f.Topic == "room:staff");
    }
}
