using System.Text.Json;
using Parley.Hub.Auth;
using Parley.Hub.Connections;
using Parley.Hub.History;
using Parley.Protocol;

namespace Parley.Hub.Tests;

/// <summary>A started hub over an in-memory store, with helpers to attach in-memory connections and send messages.</summary>
internal sealed class HubHarness : IAsyncDisposable
{
    public static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(10);

    private HubHarness(ParleyHub hub, InMemoryHistoryStore store)
    {
        Hub = hub;
        Store = store;
    }

    public ParleyHub Hub { get; }

    public InMemoryHistoryStore Store { get; }

    public static HubHarness Start(Action<HubOptions>? configure = null, InMemoryHistoryStore? store = null, IJoinAuthorizer? joinAuthorizer = null)
    {
        var options = new HubOptions();
        configure?.Invoke(options);
        store ??= new InMemoryHistoryStore();
        var hub = new ParleyHub(options, store, joinAuthorizer: joinAuthorizer);
        hub.Start();
        return new HubHarness(hub, store);
    }

    /// <summary>
    /// Attaches an in-memory connection. Its transport records presence frames only with
    /// <paramref name="presence"/>; <paramref name="principal"/> defaults to an anonymous one named after the id.
    /// </summary>
    public (HubConnection Connection, InMemoryTransport Transport) Connect(string id = "c1", int byteLimit = int.MaxValue, bool presence = false,
        ConnectionPrincipal? principal = null, string? client = null)
    {
        var transport = new InMemoryTransport(byteLimit, presence);
        var connection = Hub.Attach(id, principal ?? ConnectionPrincipal.Anonymous(id), transport, client);
        return (connection, transport);
    }

    public static PhoenixMessage Msg(string? joinRef, string? @ref, string topic, string @event, string payloadJson = "{}") =>
        PhoenixMessage.FromJson(joinRef, @ref, topic, @event, JsonDocument.Parse(payloadJson).RootElement);

    public static Task SendAsync(HubConnection connection, string? joinRef, string? @ref, string topic, string @event, string payloadJson = "{}") =>
        connection.HandleAsync(Msg(joinRef, @ref, topic, @event, payloadJson), CancellationToken.None).AsTask().WaitAsync(WaitLimit);

    /// <summary>Joins <paramref name="topic"/> with join_ref = ref = <paramref name="joinRef"/> and checks the ok reply.</summary>
    public static async Task JoinAsync(HubConnection connection, InMemoryTransport transport, string topic, string joinRef = "1", string payloadJson = "{}")
    {
        var before = transport.Frames.Count;
        await SendAsync(connection, joinRef, joinRef, topic, PhoenixEvents.Join, payloadJson);
        var reply = Frame.Parse(transport.Frames[before]);
        Assert.Equal((joinRef, joinRef, topic, "phx_reply"), (reply.JoinRef, reply.Ref, reply.Topic, reply.Event));
        Assert.Equal("ok", reply.Status);
    }

    /// <summary>Appends messages straight to the store (not through the hub): ids m1.., bodies b1.., from alice.</summary>
    public async Task SeedAsync(string topic, int count, long timestampMs)
    {
        var head = (await Store.GetPositionAsync(topic).AsTask().WaitAsync(WaitLimit)).Head;
        var batch = Enumerable.Range(1, count)
            .Select(i => new AppendRequest(topic, $"m{head + i}", timestampMs, "alice", $"b{head + i}", null, null))
            .ToList();
        await Store.AppendBatchAsync(batch).AsTask().WaitAsync(WaitLimit);
    }

    public async ValueTask DisposeAsync() => await Hub.DisposeAsync().AsTask().WaitAsync(WaitLimit);
}

/// <summary>One recorded outbound frame, parsed.</summary>
internal sealed record Frame(string? JoinRef, string? Ref, string Topic, string Event, JsonElement Payload, string Raw)
{
    public static Frame Parse(string raw)
    {
        var root = JsonDocument.Parse(raw).RootElement;
        Assert.Equal(JsonValueKind.Array, root.ValueKind);
        Assert.Equal(5, root.GetArrayLength());
        return new Frame(root[0].GetString(), root[1].GetString(), root[2].GetString()!, root[3].GetString()!, root[4], raw);
    }

    public string? Status => Event == PhoenixEvents.Reply ? Payload.GetProperty("status").GetString() : null;

    public JsonElement Response => Payload.GetProperty("response");

    public string? Reason => Response.TryGetProperty("reason", out var r) ? r.GetString() : null;

    public bool IsReplyTo(string @ref) => Event == PhoenixEvents.Reply && Ref == @ref;
}
