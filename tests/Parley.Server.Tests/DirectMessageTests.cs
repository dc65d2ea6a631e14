using System.Text.Json;
using Parley.Client;
using Parley.Server.Tests.Infrastructure;

namespace Parley.Server.Tests;

/// <summary>Direct messages on a real hub with identity on: the durable inbox, delivery rules by status, states, permissions.</summary>
public sealed class DirectMessageTests : AuthenticatedHubTest
{
    private static async Task<JsonElement> DmAsync(ParleyClient sender, object payload)
    {
        var reply = await sender.PushAsync("hub:lobby", "dm", payload);
        Assert.True(reply.IsOk, reply.Response.ToString());
        return reply.Response;
    }

    private static async Task<List<JsonElement>> ReadDmsAsync(ParleyClient client, int count)
    {
        var dms = new List<JsonElement>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (dms.Count < count)
        {
            var message = await client.Messages.ReadAsync(timeout.Token);
            if (message.Event == "dm")
            {
                dms.Add(message.Payload);
            }
        }
        return dms;
    }

    private static async Task<Dictionary<string, string>> StatesAsync(ParleyClient sender, string id)
    {
        var reply = await sender.PushAsync("hub:lobby", "message_status", new { id });
        Assert.True(reply.IsOk, reply.Response.ToString());
        return reply.Response.GetProperty("recipients").EnumerateArray().ToDictionary(r => r.GetProperty("name").GetString()!, r => r.GetProperty("state").GetString()!);
    }

    [Fact]
    public async Task An_offline_recipient_gets_every_message_in_order_on_the_next_join_even_after_a_restart()
    {
        var aliceToken = await TokenAsync("alice");
        var bobToken = await TokenAsync("bob");
        var alice = await ConnectAsync(aliceToken);
        var ids = new List<string>();
        for (var i = 1; i <= 3; i++)
        {
            var sent = await DmAsync(alice, new { to = "bob", body = $"note {i}", priority = i == 2 ? "low" : null });
            Assert.Equal(["bob"], sent.GetProperty("recipients").EnumerateArray().Select(r => r.GetString()));
            ids.Add(sent.GetProperty("id").GetString()!);
        }
        Assert.Equal("queued", (await StatesAsync(alice, ids[0]))["bob"]);

        // Acked means durable: a restart loses nothing (access tokens outlive it: the signing keys are stored).
        await RestartHubAsync();
        alice = await ConnectAsync(aliceToken);

        var bob = await ConnectAsync(bobToken);
        Assert.True((await bob.JoinAsync("user:bob")).IsOk);
        var dms = await ReadDmsAsync(bob, 3);
        Assert.Equal(["note 1", "note 2", "note 3"], dms.Select(d => d.GetProperty("body").GetString()));
        Assert.Equal([1L, 2L, 3L], dms.Select(d => d.GetProperty("seq").GetInt64()));
        Assert.All(dms, d => Assert.Equal("alice", d.GetProperty("from").GetString()));
        Assert.Equal("delivered", (await StatesAsync(alice, ids[2]))["bob"]);

        var acked = await bob.PushAsync("user:bob", "ack", new { ids = ids.Take(2).ToArray() });
        Assert.Equal(2, acked.Response.GetProperty("read").GetInt32());
        Assert.Equal("read", (await StatesAsync(alice, ids[0]))["bob"]);
        Assert.Equal("delivered", (await StatesAsync(alice, ids[2]))["bob"]);
        var unread = await bob.PushAsync("user:bob", "inbox", new { });
        Assert.Equal(["note 3"], unread.Response.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("body").GetString()));
    }

    [Fact]
    public async Task A_working_recipient_gets_only_now_live_and_the_rest_when_the_status_changes()
    {
        var alice = await ConnectAsUserAsync("alice");
        var bob = await ConnectAsUserAsync("bob");
        Assert.True((await bob.JoinAsync("user:bob")).IsOk);
        Assert.True((await bob.PushAsync("hub:lobby", "presence.update", new { status = "working" })).IsOk);

        await DmAsync(alice, new { to = "bob", body = "when you can" });
        await DmAsync(alice, new { to = "bob", body = "fyi", priority = "low" });
        await DmAsync(alice, new { to = "bob", body = "prod is down", priority = "now" });
        var urgent = Assert.Single(await ReadDmsAsync(bob, 1));
        Assert.Equal("prod is down", urgent.GetProperty("body").GetString());
        await Task.Delay(300);
        Assert.False(bob.Messages.TryRead(out _)); // the other two wait

        Assert.True((await bob.PushAsync("hub:lobby", "presence.update", new { status = "idle" })).IsOk);
        var rest = await ReadDmsAsync(bob, 2);
        Assert.Equal(["when you can", "fyi"], rest.Select(d => d.GetProperty("body").GetString()));
        Assert.Equal([1L, 2L], rest.Select(d => d.GetProperty("seq").GetInt64()));
    }

    [Fact]
    public async Task A_busy_recipient_drains_the_inbox_with_a_waiting_fetch()
    {
        var alice = await ConnectAsUserAsync("alice");
        var bob = await ConnectAsUserAsync("bob");
        Assert.True((await bob.JoinAsync("user:bob")).IsOk);
        Assert.True((await bob.PushAsync("hub:lobby", "presence.update", new { status = "dnd" })).IsOk);

        var waiting = bob.PushAsync("user:bob", "inbox", new { wait_ms = 8000 });
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);
        var sent = await DmAsync(alice, new { to = "bob", body = "review my PR?" });
        var fetched = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        var message = Assert.Single(fetched.Response.GetProperty("messages").EnumerateArray());
        Assert.Equal("review my PR?", message.GetProperty("body").GetString());
        Assert.Equal("delivered", (await StatesAsync(alice, sent.GetProperty("id").GetString()!))["bob"]);
        Assert.False(bob.Messages.TryRead(out _)); // dnd: nothing was pushed live
    }

    [Fact]
    public async Task A_group_message_reaches_every_member_of_the_group_and_its_subgroups_once()
    {
        var alice = await ConnectAsUserAsync("alice");
        var members = new Dictionary<string, ParleyClient>();
        foreach (var name in new[] { "bob", "carol", "dave" })
        {
            members[name] = await ConnectAsUserAsync(name);
            Assert.True((await members[name].JoinAsync($"user:{name}")).IsOk);
        }
        await Id.CallAsync(HttpMethod.Post, "/api/groups", new { name = "team" }, expect: System.Net.HttpStatusCode.Created);
        await Id.CallAsync(HttpMethod.Post, "/api/groups", new { name = "team/backend" }, expect: System.Net.HttpStatusCode.Created);
        foreach (var (group, user) in new[] { ("team", "alice"), ("team", "bob"), ("team", "carol"), ("team%2Fbackend", "carol"), ("team%2Fbackend", "dave") })
        {
            await Id.CallAsync(HttpMethod.Post, $"/api/groups/{group}/members", new { user });
        }

        var sent = await DmAsync(alice, new { to = "@team", body = "standup in 5" });
        Assert.Equal(["bob", "carol", "dave"], sent.GetProperty("recipients").EnumerateArray().Select(r => r.GetString())); // not alice, carol once
        foreach (var (name, client) in members)
        {
            var dm = Assert.Single(await ReadDmsAsync(client, 1));
            Assert.Equal("@team", dm.GetProperty("to").GetString());
            await Task.Delay(100);
            Assert.False(client.Messages.TryRead(out _), $"{name} got the message twice");
        }
        Assert.Equal("not_found", (await alice.PushAsync("hub:lobby", "dm", new { to = "@nobody", body = "x" })).Reason);
    }

    [Fact]
    public async Task Permissions_and_bad_input_get_clear_answers()
    {
        var alice = await ConnectAsUserAsync("alice");
        var bob = await ConnectAsUserAsync("bob");
        var gina = await ConnectAsUserAsync("gina", "guest");

        Assert.Equal("forbidden", (await gina.PushAsync("hub:lobby", "dm", new { to = "bob", body = "hi" })).Reason);
        Assert.Equal("forbidden", (await bob.JoinAsync("user:alice")).Reason);
        Assert.Equal("not_found", (await alice.PushAsync("hub:lobby", "dm", new { to = "nobody", body = "hi" })).Reason);
        Assert.Equal("invalid_payload", (await alice.PushAsync("hub:lobby", "dm", new { to = "bob" })).Reason);
        Assert.Equal("invalid_payload", (await alice.PushAsync("hub:lobby", "dm", new { to = "bob", body = "x", priority = "asap" })).Reason);
        Assert.Equal("invalid_payload", (await alice.PushAsync("hub:lobby", "dm", new { to = "alice", body = "me" })).Reason);
        var sent = await DmAsync(alice, new { to = new[] { "bob", "gina" }, body = "both of you" });
        Assert.Equal(["bob", "gina"], sent.GetProperty("recipients").EnumerateArray().Select(r => r.GetString()));
        Assert.Equal("not_found", (await bob.PushAsync("hub:lobby", "message_status", new { id = sent.GetProperty("id").GetString() })).Reason); // not bob's to ask
        Assert.True((await gina.JoinAsync("user:gina")).IsOk); // guests read their own inbox
        Assert.Equal("both of you", Assert.Single(await ReadDmsAsync(gina, 1)).GetProperty("body").GetString());
    }

    [Fact]
    public async Task Unread_messages_are_offered_again_on_the_next_join_and_a_waiting_fetch_does_not_hold_the_socket()
    {
        var alice = await ConnectAsUserAsync("alice");
        var bobToken = await TokenAsync("bob");
        var bob = await ConnectAsync(bobToken);
        Assert.True((await bob.JoinAsync("user:bob")).IsOk);
        var first = (await DmAsync(alice, new { to = "bob", body = "one" })).GetProperty("id").GetString()!;
        Assert.Equal("one", Assert.Single(await ReadDmsAsync(bob, 1)).GetProperty("body").GetString());

        // A new socket (the old one may have lost it) is offered the unread message again, then an ack settles it.
        var again = await ConnectAsync(bobToken);
        Assert.True((await again.JoinAsync("user:bob")).IsOk);
        Assert.Equal(first, Assert.Single(await ReadDmsAsync(again, 1)).GetProperty("id").GetString());

        // While a fetch waits on this socket, its other pushes are answered.
        var waiting = again.PushAsync("user:bob", "inbox", new { wait_ms = 5000, after = 1 });
        var acked = await again.PushAsync("user:bob", "ack", new { ids = new[] { first } }).WaitAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(1, acked.Response.GetProperty("read").GetInt32());
        Assert.False(waiting.IsCompleted);
        await DmAsync(alice, new { to = "bob", body = "two" });
        var fetched = await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("two", Assert.Single(fetched.Response.GetProperty("messages").EnumerateArray()).GetProperty("body").GetString());

        var third = await ConnectAsync(bobToken);
        Assert.True((await third.JoinAsync("user:bob", joinParams: new System.Text.Json.Nodes.JsonObject { ["after"] = 1 })).IsOk);
        Assert.Equal("two", Assert.Single(await ReadDmsAsync(third, 1)).GetProperty("body").GetString()); // read ones are not offered
    }

    [Fact]
    public async Task A_busy_status_ends_with_the_users_last_presence_connection_and_releases_what_waited()
    {
        var alice = await ConnectAsUserAsync("alice");
        var bobToken = await TokenAsync("bob");
        var inbox = await ConnectAsync(bobToken);
        Assert.True((await inbox.JoinAsync("user:bob")).IsOk);
        var status = await ConnectAsync(bobToken);
        Assert.True((await status.PushAsync("hub:lobby", "presence.update", new { status = "dnd" })).IsOk);
        await DmAsync(alice, new { to = "bob", body = "later" });
        await Task.Delay(300);
        Assert.False(inbox.Messages.TryRead(out _));

        await DropAsync(status); // the connection that set dnd is gone: bob is idle again
        Assert.Equal("later", Assert.Single(await ReadDmsAsync(inbox, 1)).GetProperty("body").GetString());
    }

    [Fact]
    public async Task An_api_key_without_a_user_has_no_inbox_and_sends_no_direct_messages()
    {
        await TokenAsync("bob");
        var key = await ConnectAsync(Id.OwnerKey); // key:initial-owner
        Assert.Equal("forbidden", (await key.PushAsync("hub:lobby", "dm", new { to = "bob", body = "hi" })).Reason);
        Assert.Equal("forbidden", (await key.JoinAsync("user:key:initial-owner")).Reason);
    }
}
