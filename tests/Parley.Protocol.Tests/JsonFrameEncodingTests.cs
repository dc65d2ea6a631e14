using System.Text;
using System.Text.Json;

namespace Parley.Protocol.Tests;

/// <summary>Golden bytes of every outbound JSON text frame (PHOENIX-V2 §2–§8) and of their WebSocket headers.</summary>
public class JsonFrameEncodingTests
{
    /// <summary>Splits a complete server text frame into its header and its payload text, checking the header is exact.</summary>
    private static string TextPayload(byte[] frame)
    {
        Assert.True(frame.Length >= 2);
        Assert.Equal(0x81, frame[0]); // FIN + text
        var (headerLength, payloadLength) = ParseServerHeader(frame);
        Assert.Equal(frame.Length, headerLength + payloadLength);
        return Encoding.UTF8.GetString(frame, headerLength, (int)payloadLength);
    }

    internal static (int HeaderLength, long PayloadLength) ParseServerHeader(byte[] frame)
    {
        Assert.Equal(0, frame[1] & 0x80); // servers never mask
        var length = frame[1] & 0x7F;
        return length switch
        {
            126 => (4, (frame[2] << 8) | frame[3]),
            127 => (10, (long)System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(frame.AsSpan(2))),
            _ => (2, length),
        };
    }

    [Fact]
    public void Heartbeat_reply()
    {
        var frame = WireFrames.ReplyEmpty(null, "12", "phoenix", PhoenixEvents.StatusOk);

        const string Json = """[null,"12","phoenix","phx_reply",{"status":"ok","response":{}}]""";
        Assert.Equal(Json, TextPayload(frame));
        Assert.Equal(new byte[] { 0x81, (byte)Json.Length }, frame[..2]);
        Assert.Equal(Encoding.UTF8.GetBytes(Json), frame[2..]);
    }

    [Fact]
    public void Join_reply_with_response()
    {
        var frame = WireFrames.Reply("3", "3", "room:lobby", PhoenixEvents.StatusOk, ("e7", 42L), static (w, s) =>
        {
            w.WriteStartObject();
            w.WriteString("epoch", s.Item1);
            w.WriteNumber("offset", s.Item2);
            w.WriteBoolean("recovered", true);
            w.WriteEndObject();
        });

        Assert.Equal(
            """["3","3","room:lobby","phx_reply",{"status":"ok","response":{"epoch":"e7","offset":42,"recovered":true}}]""",
            TextPayload(frame));
    }

    [Fact]
    public void Error_reply()
    {
        var frame = WireFrames.ErrorReply(null, "3", "room:lobby", ErrorReasons.UnmatchedTopic);

        Assert.Equal(
            """[null,"3","room:lobby","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]""",
            TextPayload(frame));
    }

    [Fact]
    public void Broadcast_has_null_join_ref_and_ref()
    {
        var frame = WireFrames.Text(null, null, "room:lobby", "new_msg", "hi", static (w, body) =>
        {
            w.WriteStartObject();
            w.WriteString("body", body);
            w.WriteEndObject();
        });

        Assert.Equal("""[null,null,"room:lobby","new_msg",{"body":"hi"}]""", TextPayload(frame));
    }

    [Fact]
    public void Push_with_join_ref_and_null_ref()
    {
        var frame = WireFrames.Text("3", null, "room:lobby", "presence_state", 0, static (w, _) =>
        {
            w.WriteStartObject();
            w.WritePropertyName("user:7");
            w.WriteStartObject();
            w.WritePropertyName("metas");
            w.WriteStartArray();
            w.WriteStartObject();
            w.WriteString("phx_ref", "p1");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        });

        Assert.Equal("""["3",null,"room:lobby","presence_state",{"user:7":{"metas":[{"phx_ref":"p1"}]}}]""", TextPayload(frame));
    }

    [Fact]
    public void Phx_close()
    {
        var frame = WireFrames.EmptyEvent("3", "3", "room:lobby", PhoenixEvents.Close);

        Assert.Equal("""["3","3","room:lobby","phx_close",{}]""", TextPayload(frame));
        Assert.Equal(Encoding.UTF8.GetBytes("""["3","3","room:lobby","phx_close",{}]"""), frame[2..]);
    }

    [Fact]
    public void Non_ascii_is_written_as_raw_utf8_and_quotes_are_escaped()
    {
        var frame = WireFrames.Text(null, null, "room:caf\u00e9", "msg", "h\u00e9 \u2603 \"q\" <b>", static (w, body) =>
        {
            w.WriteStartObject();
            w.WriteString("body", body);
            w.WriteEndObject();
        });

        var expected = Encoding.UTF8.GetBytes("[null,null,\"room:caf\u00e9\",\"msg\",{\"body\":\"h\u00e9 \u2603 \\\"q\\\" <b>\"}]");
        Assert.Equal(expected, frame[2..]);
        Assert.Equal(expected.Length, frame[1]);
    }

    [Fact]
    public void Frames_written_one_after_another_do_not_leak_into_each_other()
    {
        var big = WireFrames.Text(null, null, "t", "e", new string('x', 70_000), static (w, s) => w.WriteStringValue(s));
        var small = WireFrames.EmptyEvent("1", "1", "t", PhoenixEvents.Close);

        Assert.Equal(70_000 + 22, ParseServerHeader(big).PayloadLength);
        Assert.Equal("""["1","1","t","phx_close",{}]""", TextPayload(small));
    }

    /// <summary>Frame overhead of <c>[null,null,"t","e",""]</c>: 22 bytes; the string adds one byte per 'x'.</summary>
    [Theory]
    [InlineData(125, new byte[] { 0x81, 0x7D })]
    [InlineData(126, new byte[] { 0x81, 0x7E, 0x00, 0x7E })]
    [InlineData(65535, new byte[] { 0x81, 0x7E, 0xFF, 0xFF })]
    [InlineData(65536, new byte[] { 0x81, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 })]
    public void WireFrames_header_for_payload_length(int payloadLength, byte[] expectedHeader)
    {
        var padding = new string('x', payloadLength - 22);
        var frame = WireFrames.Text(null, null, "t", "e", padding, static (w, s) => w.WriteStringValue(s));

        Assert.Equal(expectedHeader.Length + payloadLength, frame.Length);
        Assert.Equal(expectedHeader, frame[..expectedHeader.Length]);
        Assert.Equal("[null,null,\"t\",\"e\",\"" + padding + "\"]", Encoding.UTF8.GetString(frame.AsSpan(expectedHeader.Length)));
    }

    [Theory]
    [InlineData(0, new byte[] { 0x00 })]
    [InlineData(125, new byte[] { 0x7D })]
    [InlineData(126, new byte[] { 0x7E, 0x00, 0x7E })]
    [InlineData(65535, new byte[] { 0x7E, 0xFF, 0xFF })]
    [InlineData(65536, new byte[] { 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00 })]
    public void EncodeFrame_header_for_each_opcode(int payloadLength, byte[] lengthBytes)
    {
        var payload = new byte[payloadLength];
        Array.Fill(payload, (byte)0xAB);
        foreach (var (opcode, first) in new[] { (WebSocketOpcode.Text, 0x81), (WebSocketOpcode.Binary, 0x82), (WebSocketOpcode.Close, 0x88) })
        {
            var frame = WebSocketFraming.EncodeFrame(opcode, payload);

            Assert.Equal(1 + lengthBytes.Length + payloadLength, frame.Length);
            Assert.Equal(first, frame[0]);
            Assert.Equal(lengthBytes, frame[1..(1 + lengthBytes.Length)]);
            Assert.Equal(payload, frame[(1 + lengthBytes.Length)..]);
            Assert.Equal(1 + lengthBytes.Length, WebSocketFraming.HeaderLength(payloadLength));
        }
    }

    [Fact]
    public void Reply_payload_writer_writes_status_then_response()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        PhoenixJsonCodec.Write(buffer, "1", "2", "room:a", PhoenixEvents.Reply, 0, static (w, _) =>
            PhoenixJsonCodec.WriteReplyPayload(w, "custom", 5, static (w2, n) => w2.WriteNumberValue(n)));

        Assert.Equal("""["1","2","room:a","phx_reply",{"status":"custom","response":5}]""", Encoding.UTF8.GetString(buffer.WrittenSpan));
        using var parsed = JsonDocument.Parse(buffer.WrittenMemory);
        Assert.Equal(5, parsed.RootElement.GetArrayLength());
    }
}
