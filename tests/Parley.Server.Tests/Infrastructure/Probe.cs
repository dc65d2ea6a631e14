using System.Text.Json.Nodes;

namespace Parley.Server.Tests.Infrastructure;

/// <summary>Shared checks: "the hub still serves a well-behaved client".</summary>
public static class Probe
{
    /// <summary>Connects a fresh client, joins a room, pushes, and asserts the ack and the broadcast.</summary>
    public static async Task AssertServesWellBehavedClientAsync(Uri baseUrl)
    {
        await using var client = await RawWebSocket.ConnectAsync(baseUrl);
        var topic = "room:probe-" + Guid.NewGuid().ToString("N")[..8];
        var joined = await client.JoinAsync(topic);
        Assert.NotNull(joined["epoch"]);
        var pushRef = await client.PushAsync("1", topic, "msg", new { body = "still here" });
        var others = new List<ServerFrame>();
        var reply = await client.ReadReplyAsync(pushRef, others);
        Assert.Equal("ok", reply.Payload_!["status"]!.GetValue<string>());
        var id = reply.Payload_!["response"]!["id"]!.GetValue<string>();
        var broadcast = others.Find(f => f.Event == "msg") ?? await client.ReadUntilAsync(f => f.Opcode == 1 && f.Event == "msg");
        Assert.Equal(id, broadcast.Payload_!["id"]!.GetValue<string>());
        Assert.Equal("still here", broadcast.Payload_!["body"]!.GetValue<string>());
    }

    public static string Status(this ServerFrame reply) => reply.Payload_!["status"]!.GetValue<string>();
    public static JsonNode Response(this ServerFrame reply) => reply.Payload_!["response"]!;
    public static string? Reason(this ServerFrame reply) => reply.Payload_!["response"]?["reason"]?.GetValue<string>();
}
