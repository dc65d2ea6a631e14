using System.Text;

namespace Parley.Protocol.Tests;

/// <summary>Phoenix V2 binary frames (PHOENIX-V2 §11), golden bytes built by hand from the layout.</summary>
public class BinaryCodecTests
{
    private static byte[] B(string ascii) => Encoding.UTF8.GetBytes(ascii);

    private static byte[] Bytes(params object[] parts) => parts.SelectMany(p => p switch
    {
        byte b => [b],
        int i => [checked((byte)i)],
        string s => B(s),
        byte[] a => a,
        _ => throw new ArgumentException("part"),
    }).ToArray();

    [Fact]
    public void EncodePush_kind_0_without_ref()
    {
        var frame = PhoenixBinaryCodec.EncodePush("5", "room:a", "ev", new byte[] { 1, 2, 3 });

        // [0][len join_ref][len topic][len event] join_ref topic event payload
        Assert.Equal(Bytes(0, 1, 6, 2, "5", "room:a", "ev", new byte[] { 1, 2, 3 }), frame);
    }

    [Fact]
    public void EncodePush_with_null_join_ref_has_zero_length()
    {
        var frame = PhoenixBinaryCodec.EncodePush(null, "t", "e", []);

        Assert.Equal(Bytes(0, 0, 1, 1, "t", "e"), frame);
    }

    [Fact]
    public void EncodeReply_kind_1()
    {
        var frame = PhoenixBinaryCodec.EncodeReply("5", "17", "room:a", "ok", new byte[] { 0xFF, 0x00 });

        // [1][len join_ref][len ref][len topic][len status] join_ref ref topic status response
        Assert.Equal(Bytes(1, 1, 2, 6, 2, "5", "17", "room:a", "ok", new byte[] { 0xFF, 0x00 }), frame);
    }

    [Fact]
    public void EncodeReply_with_null_refs()
    {
        var frame = PhoenixBinaryCodec.EncodeReply(null, null, "t", "error", new byte[] { 9 });

        Assert.Equal(Bytes(1, 0, 0, 1, 5, "t", "error", new byte[] { 9 }), frame);
    }

    [Fact]
    public void EncodeBroadcast_kind_2()
    {
        var frame = PhoenixBinaryCodec.EncodeBroadcast("room:a", "msg", new byte[] { 10, 20 });

        // [2][len topic][len event] topic event payload
        Assert.Equal(Bytes(2, 6, 3, "room:a", "msg", new byte[] { 10, 20 }), frame);
    }

    [Fact]
    public void Header_lengths_count_utf8_bytes_not_chars()
    {
        var frame = PhoenixBinaryCodec.EncodeBroadcast("room:\u00e9", "\u2603", []);

        Assert.Equal(Bytes(2, 7, 3, "room:\u00e9", "\u2603"), frame);
    }

    [Fact]
    public void WsFramed_prefixes_a_binary_header_to_the_same_bytes()
    {
        var payload = new byte[] { 1, 2, 3 };
        var plain = PhoenixBinaryCodec.EncodeReply("1", "2", "room:a", "ok", payload);
        var framed = PhoenixBinaryCodec.EncodeReply("1", "2", "room:a", "ok", payload, wsFramed: true);

        Assert.Equal(new byte[] { 0x82, (byte)plain.Length }, framed[..2]);
        Assert.Equal(plain, framed[2..]);

        var push = PhoenixBinaryCodec.EncodePush("1", "t", "e", payload);
        var pushFramed = PhoenixBinaryCodec.EncodePush("1", "t", "e", payload, wsFramed: true);
        Assert.Equal(new byte[] { 0x82, (byte)push.Length }, pushFramed[..2]);
        Assert.Equal(push, pushFramed[2..]);
        var broadcast = PhoenixBinaryCodec.EncodeBroadcast("t", "e", payload);
        Assert.Equal([0x82, (byte)broadcast.Length, .. broadcast], PhoenixBinaryCodec.EncodeBroadcast("t", "e", payload, wsFramed: true));
    }

    [Fact]
    public void WsFramed_uses_an_extended_length_for_large_payloads()
    {
        var payload = new byte[300];
        var plain = PhoenixBinaryCodec.EncodeBroadcast("t", "e", payload);
        var framed = PhoenixBinaryCodec.EncodeBroadcast("t", "e", payload, wsFramed: true);

        Assert.Equal(305, plain.Length);
        Assert.Equal(new byte[] { 0x82, 126, 0x01, 0x31 }, framed[..4]);
        Assert.Equal(plain, framed[4..]);
    }

    [Fact]
    public void A_field_over_255_bytes_throws()
    {
        var tooLong = new string('t', 256);
        Assert.Throws<ArgumentException>(() => PhoenixBinaryCodec.EncodeBroadcast(tooLong, "e", []));
        Assert.Throws<ArgumentException>(() => PhoenixBinaryCodec.EncodePush("1", "t", tooLong, []));
        Assert.Throws<ArgumentException>(() => PhoenixBinaryCodec.EncodeReply(tooLong, "1", "t", "ok", []));
        // 128 two-byte characters: 256 bytes although only 128 chars.
        Assert.Throws<ArgumentException>(() => PhoenixBinaryCodec.EncodeReply("1", "1", "t", new string('\u00e9', 128), []));
    }

    [Fact]
    public void A_field_of_exactly_255_bytes_is_accepted()
    {
        var max = new string('t', 255);
        var frame = PhoenixBinaryCodec.EncodeBroadcast(max, "e", []);

        Assert.Equal(255, frame[1]);
        Assert.Equal(1 + 2 + 255 + 1, frame.Length);
    }

    [Fact]
    public void TryParsePush_round_trips_a_client_push()
    {
        var payload = new byte[] { 0, 1, 2, 254, 255 };
        var frame = Bytes(0, 1, 2, 6, 3, "5", "12", "room:a", "msg", payload);

        Assert.True(PhoenixBinaryCodec.TryParsePush(frame, out var message, out var error));
        using (message)
        {
            Assert.Equal("", error);
            Assert.NotNull(message);
            Assert.Equal("5", message.JoinRef);
            Assert.Equal("12", message.Ref);
            Assert.Equal("room:a", message.Topic);
            Assert.Equal("msg", message.Event);
            Assert.True(message.IsBinary);
            Assert.Equal(payload, message.BinaryPayload.ToArray());

            // The payload is a copy, independent of the frame.
            frame[^1] = 0x42;
            Assert.Equal(255, message.BinaryPayload.Span[^1]);
        }
    }

    [Fact]
    public void TryParsePush_empty_join_ref_and_ref_become_null_and_payload_may_be_empty()
    {
        var frame = Bytes(0, 0, 0, 1, 1, "t", "e");

        Assert.True(PhoenixBinaryCodec.TryParsePush(frame, out var message, out _));
        using (message)
        {
            Assert.Null(message!.JoinRef);
            Assert.Null(message.Ref);
            Assert.Equal("t", message.Topic);
            Assert.Equal("e", message.Event);
            Assert.True(message.BinaryPayload.IsEmpty);
        }
    }

    [Fact]
    public void TryParsePush_accepts_what_a_phoenix_client_would_encode()
    {
        // phoenix.js serializer.binaryEncode: [kind, joinRef.length, ref.length, topic.length, event.length] + strings + payload.
        var frame = Bytes(0, 1, 1, 10, 8, "3", "7", "room:lobby", "file_put", new byte[] { 0xCA, 0xFE });

        Assert.True(PhoenixBinaryCodec.TryParsePush(frame, out var message, out _));
        using (message)
        {
            Assert.Equal(("3", "7", "room:lobby", "file_put"), (message!.JoinRef, message.Ref, message.Topic, message.Event));
            Assert.Equal(new byte[] { 0xCA, 0xFE }, message.BinaryPayload.ToArray());
        }
    }

    [Theory]
    [InlineData(new byte[] { }, "shorter than its header")]
    [InlineData(new byte[] { 0, 0, 1, 1 }, "shorter than its header")]
    [InlineData(new byte[] { 1, 0, 0, 1, 1, 0x74, 0x65 }, "kind 1")]
    [InlineData(new byte[] { 2, 0, 0, 1, 1, 0x74, 0x65 }, "kind 2")]
    [InlineData(new byte[] { 0, 0, 0, 1, 2, 0x74, 0x65 }, "shorter than its header says")]
    [InlineData(new byte[] { 0, 200, 0, 1, 1, 0x74, 0x65 }, "shorter than its header says")]
    [InlineData(new byte[] { 0, 0, 0, 0, 1, 0x65 }, "must not be empty")]
    [InlineData(new byte[] { 0, 0, 0, 1, 0, 0x74 }, "must not be empty")]
    [InlineData(new byte[] { 0, 0, 0, 1, 1, 0xFF, 0x65 }, "UTF-8")]
    public void TryParsePush_rejects(byte[] frame, string reasonPart)
    {
        Assert.False(PhoenixBinaryCodec.TryParsePush(frame, out var message, out var error));
        Assert.Null(message);
        Assert.Contains(reasonPart, error, StringComparison.Ordinal);
    }

    [Fact]
    public void EncodeClientPush_is_what_TryParsePush_reads_payload_bytes_untouched()
    {
        byte[] payload = [0, 0, 0, 0, 0, 0, 0, 9, 0xFF, 0xFE, 0x1B, (byte)'['];
        var frame = PhoenixBinaryCodec.EncodeClientPush("3", "12", "term:a", "record_output", payload);

        Assert.Equal(Bytes(0, 1, 2, 6, 13, "3", "12", "term:a", "record_output", payload), frame);
        Assert.True(PhoenixBinaryCodec.TryParsePush(frame, out var message, out var error), error);
        Assert.Equal(("3", "12", "term:a", "record_output"), (message!.JoinRef, message.Ref, message.Topic, message.Event));
        Assert.True(message.IsBinary);
        Assert.Equal(payload, message.BinaryPayload.ToArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void TryParseServerFrame_reads_every_server_kind(int kind)
    {
        byte[] payload = [1, 0xC3, 0x28, 255];
        var frame = kind switch
        {
            0 => PhoenixBinaryCodec.EncodePush("4", "term:b", "input", payload),
            1 => PhoenixBinaryCodec.EncodeReply("4", "9", "term:b", "ok", payload),
            _ => PhoenixBinaryCodec.EncodeBroadcast("term:b", "output", payload),
        };

        Assert.True(PhoenixBinaryCodec.TryParseServerFrame(frame, out var parsedKind, out var joinRef, out var @ref, out var topic, out var eventOrStatus, out var start));
        Assert.Equal((byte)kind, parsedKind);
        Assert.Equal("term:b", topic);
        Assert.Equal(kind switch { 0 => "input", 1 => "ok", _ => "output" }, eventOrStatus);
        Assert.Equal(kind == 2 ? null : "4", string.IsNullOrEmpty(joinRef) ? null : joinRef);
        Assert.Equal(kind == 1 ? "9" : null, @ref);
        Assert.Equal(payload, frame[start..]);
    }

    [Theory]
    [InlineData(new byte[] { })]
    [InlineData(new byte[] { 7, 0, 0 })]
    [InlineData(new byte[] { 2, 5, 1, (byte)'t' })]
    [InlineData(new byte[] { 2, 1, 1, 0xFF, (byte)'e' })]
    public void TryParseServerFrame_refuses_unknown_kinds_short_headers_and_invalid_utf8(byte[] frame) =>
        Assert.False(PhoenixBinaryCodec.TryParseServerFrame(frame, out _, out _, out _, out _, out _, out _));
}
