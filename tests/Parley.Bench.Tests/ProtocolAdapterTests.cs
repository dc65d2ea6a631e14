using System.Text;
using Parley.Bench.Protocols;

namespace Parley.Bench.Tests;

/// <summary>Each adapter writes the wire contract's bytes and finds deliveries, replies and pings in what servers send.</summary>
public sealed class ProtocolAdapterTests
{
    private sealed class Sink : IFrameSink
    {
        public List<(long Sent, long Offset, bool Replay)> Deliveries { get; } = [];
        public List<(long Id, bool Ok, long Offset)> Replies { get; } = [];
        public int Pings { get; private set; }
        public List<string> Errors { get; } = [];

        public void OnDelivery(long sentTimestamp, long offset, bool replay) => Deliveries.Add((sentTimestamp, offset, replay));
        public void OnReply(long id, bool ok, long offset, ReadOnlySpan<byte> record) => Replies.Add((id, ok, offset));
        public void OnPing() => Pings++;
        public void OnServerError(string message) => Errors.Add(message);
    }

    private static string Write(Func<byte[], int> write)
    {
        var buffer = new byte[1024];
        return Encoding.ASCII.GetString(buffer, 0, write(buffer));
    }

    private static Sink Parse(IBenchProtocol protocol, string message)
    {
        var sink = new Sink();
        protocol.Parse(Encoding.UTF8.GetBytes(message), sink);
        return sink;
    }

    [Theory]
    [InlineData(32)]
    [InlineData(100)]
    [InlineData(1000)]
    public void Body_is_exactly_size_bytes_of_plain_ascii_with_the_timestamp_first(int size)
    {
        var buffer = new byte[size + 10];
        Assert.Equal(size, BenchBody.Write(buffer, size, 1234567890123));
        var body = Encoding.ASCII.GetString(buffer, 0, size);
        Assert.StartsWith("t=1234567890123;x", body, StringComparison.Ordinal);
        Assert.All(body, c => Assert.True(c is 'x' or 't' or '=' or ';' or (>= '0' and <= '9')));
        Assert.True(BenchBody.TryReadTimestamp(Encoding.ASCII.GetBytes("\"body\":\"" + body + "\""), out var ts));
        Assert.Equal(1234567890123, ts);
    }

    [Fact]
    public void Parley_writes_phoenix_v2_frames()
    {
        var p = new ParleyProtocol();
        var topic = "room:bench-1"u8.ToArray();
        Assert.Equal("[\"7\",\"7\",\"room:bench-1\",\"phx_join\",{\"presence\":false}]", Write(b => p.WriteJoin(b, 7, topic, null)));
        Assert.Equal("[\"7\",\"7\",\"room:bench-1\",\"phx_join\",{\"presence\":false,\"since\":42,\"epoch\":\"0123456789ab\"}]",
            Write(b => p.WriteJoin(b, 7, topic, new JoinPosition(42, "0123456789ab"))));
        var push = Write(b => p.WritePublish(b, 9, topic, 7, 40, 555));
        Assert.Equal("[\"7\",\"9\",\"room:bench-1\",\"msg\",{\"body\":\"t=555;" + new string('x', 34) + "\"}]", push);
        Assert.Equal("[null,\"hb\",\"phoenix\",\"heartbeat\",{}]", Encoding.ASCII.GetString(p.Heartbeat.Span));
        Assert.Equal(new Uri("ws://127.0.0.1:4000/socket/websocket?vsn=2.0.0"), p.SocketUri(new Uri("http://127.0.0.1:4000/ignored")));
    }

    [Fact]
    public void Parley_finds_broadcasts_replays_replies_and_errors()
    {
        var p = new ParleyProtocol();
        var broadcast = Parse(p, "[null,null,\"room:a\",\"msg\",{\"id\":\"x\",\"offset\":42,\"ts\":1700000000000,\"from\":\"anon-1\",\"body\":\"t=999;xxxx\"}]");
        Assert.Equal([(999L, 42L, false)], broadcast.Deliveries);

        var replay = Parse(p, "[\"3\",null,\"room:a\",\"msg\",{\"id\":\"x\",\"offset\":7,\"ts\":1,\"from\":\"anon-1\",\"body\":\"t=5;xx\"}]");
        Assert.Equal([(5L, 7L, true)], replay.Deliveries);

        var ok = Parse(p, "[\"3\",\"12\",\"room:a\",\"phx_reply\",{\"status\":\"ok\",\"response\":{\"id\":\"x\",\"offset\":43,\"ts\":1}}]");
        Assert.Equal([(12L, true, 43L)], ok.Replies);

        var limited = "[\"3\",\"13\",\"room:a\",\"phx_reply\",{\"status\":\"error\",\"response\":{\"reason\":\"rate_limited\",\"retry_after_ms\":25}}]";
        Assert.Equal([(13L, false, -1L)], Parse(p, limited).Replies);
        Assert.Equal(new ReplyError("rate_limited", 25), p.ParseError(Encoding.UTF8.GetBytes(limited)));

        var join = p.ParseJoinReply(true, "[\"1\",\"1\",\"room:a\",\"phx_reply\",{\"status\":\"ok\",\"response\":{\"offset\":10,\"epoch\":\"0123456789ab\",\"recovered\":true}}]"u8);
        Assert.Equal(new JoinReply(true, 10, "0123456789ab", true, null), join);

        // The heartbeat's reply (ref "hb") is not an id: ignored.
        Assert.Empty(Parse(p, "[null,\"hb\",\"phoenix\",\"phx_reply\",{\"status\":\"ok\",\"response\":{}}]").Replies);
        Assert.Single(Parse(p, "[\"1\",\"1\",\"room:a\",\"phx_close\",{}]").Errors);
        Assert.Empty(Parse(p, "not json").Deliveries);
    }

    [Fact]
    public void SignalR_writes_invocations_and_splits_records()
    {
        var s = new SignalRProtocol();
        var topic = "room:x"u8.ToArray();
        Assert.Equal("{\"type\":1,\"invocationId\":\"4\",\"target\":\"Join\",\"arguments\":[\"room:x\"]}\u001e", Write(b => s.WriteJoin(b, 4, topic, null)));
        Assert.Equal("{\"type\":1,\"invocationId\":\"5\",\"target\":\"Publish\",\"arguments\":[\"room:x\",\"t=8;" + new string('x', 28) + "\"]}\u001e",
            Write(b => s.WritePublish(b, 5, topic, 0, 32, 8)));
        Assert.Equal("{\"type\":6}\u001e", Encoding.ASCII.GetString(s.Heartbeat.Span));
        Assert.Equal(new Uri("ws://127.0.0.1:5100/hub"), s.SocketUri(new Uri("http://127.0.0.1:5100")));

        var sink = Parse(s,
            "{\"type\":1,\"target\":\"msg\",\"arguments\":[\"t=11;xx\"]}\u001e" +
            "{\"type\":3,\"invocationId\":\"5\",\"result\":true}\u001e" +
            "{\"type\":6}\u001e" +
            "{\"type\":3,\"invocationId\":\"6\",\"error\":\"boom\"}\u001e" +
            "{\"type\":1,\"target\":\"msg\",\"arguments\":[\"t=12;xx\"]}\u001e");
        Assert.Equal([(11L, -1L, false), (12L, -1L, false)], sink.Deliveries);
        Assert.Equal([(5L, true, -1L), (6L, false, -1L)], sink.Replies);
        Assert.Single(Parse(s, "{\"type\":7,\"error\":\"server closing\"}\u001e").Errors);
    }

    [Fact]
    public void SocketIo_writes_emits_with_acks_and_answers_pings()
    {
        var io = new SocketIoProtocol();
        var topic = "room:x"u8.ToArray();
        Assert.Equal("423[\"join\",\"room:x\"]", Write(b => io.WriteJoin(b, 3, topic, null)));
        Assert.Equal("4217[\"publish\",\"room:x\",\"t=8;" + new string('x', 28) + "\"]", Write(b => io.WritePublish(b, 17, topic, 0, 32, 8)));
        Assert.Equal(new Uri("ws://127.0.0.1:5200/socket.io/?EIO=4&transport=websocket"), io.SocketUri(new Uri("http://127.0.0.1:5200")));

        Assert.Equal([(21L, -1L, false)], Parse(io, "42[\"msg\",\"t=21;xxx\"]").Deliveries);
        Assert.Equal([(17L, true, -1L)], Parse(io, "4317[true]").Replies);
        Assert.Equal([(18L, false, -1L)], Parse(io, "4318[false]").Replies);
        Assert.Equal(1, Parse(io, "2").Pings);
        Assert.Equal("3", Encoding.ASCII.GetString(io.Pong.Span));
        Assert.Single(Parse(io, "41").Errors);
        Assert.Empty(Parse(io, "42[\"other\",\"t=1;x\"]").Deliveries);
    }
}
