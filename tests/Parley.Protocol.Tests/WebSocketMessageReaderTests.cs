using System.Buffers;
using System.Text;

namespace Parley.Protocol.Tests;

/// <summary><see cref="WebSocketMessageReader"/>: RFC 6455 client frames in, messages out.</summary>
public class WebSocketMessageReaderTests
{
    private const int Limit = 1024 * 1024;

    private static ReaderFeed NewFeed(int limit = Limit) => new(new WebSocketMessageReader(limit));

    [Fact]
    public void Rfc6455_masked_hello()
    {
        // RFC 6455 §5.7: a single-frame masked text message containing "Hello".
        byte[] frame = [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58];
        Assert.Equal(frame, ClientFrames.Text("Hello"));
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(frame));
        Assert.Equal(WebSocketOpcode.Text, feed.Reader.Opcode);
        Assert.Equal("Hello", feed.Text);
        Assert.Equal(0, feed.Pending);
    }

    [Fact]
    public void Masked_text_longer_than_eight_bytes_is_unmasked()
    {
        var text = """[null,"1","phoenix","heartbeat",{}]""";
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Text(text)));
        Assert.Equal(text, feed.Text);
        Assert.Equal(text, Encoding.UTF8.GetString(feed.Reader.PayloadMemory.Span));
    }

    [Fact]
    public void Binary_message_keeps_its_opcode()
    {
        var payload = ClientFrames.Pattern(37);
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Build(WebSocketOpcode.Binary, payload)));
        Assert.Equal(WebSocketOpcode.Binary, feed.Reader.Opcode);
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
    }

    [Fact]
    public void Empty_text_message()
    {
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Text("")));
        Assert.Equal(WebSocketOpcode.Text, feed.Reader.Opcode);
        Assert.Equal(0, feed.Reader.Payload.Length);
    }

    [Fact]
    public void Fragmented_message_is_reassembled()
    {
        // RFC 6455 §5.7: "Hel" (text, not final) + "lo" (continuation, final).
        var bytes = ClientFrames.Concat(ClientFrames.Text("Hel", fin: false), ClientFrames.Continuation("lo"));
        Assert.Equal(0x01, bytes[0]);
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal(WebSocketOpcode.Text, feed.Reader.Opcode);
        Assert.Equal("Hello", feed.Text);
        Assert.Equal(0, feed.Pending);
    }

    [Fact]
    public void Fragmented_binary_message_in_many_parts()
    {
        var payload = ClientFrames.Pattern(1000);
        var bytes = ClientFrames.Concat(
            ClientFrames.Build(WebSocketOpcode.Binary, payload.AsSpan(0, 1), fin: false),
            ClientFrames.Build(WebSocketOpcode.Continuation, payload.AsSpan(1, 0), fin: false),
            ClientFrames.Build(WebSocketOpcode.Continuation, payload.AsSpan(1, 500), fin: false),
            ClientFrames.Build(WebSocketOpcode.Continuation, payload.AsSpan(501, 499)));
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal(WebSocketOpcode.Binary, feed.Reader.Opcode);
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
    }

    [Fact]
    public void Ping_between_fragments_comes_out_first_then_the_message_completes()
    {
        var bytes = ClientFrames.Concat(ClientFrames.Text("Hel", fin: false), ClientFrames.Ping("are you there"), ClientFrames.Continuation("lo"));
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal(WebSocketOpcode.Ping, feed.Reader.Opcode);
        Assert.Equal("are you there", feed.Text);

        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal(WebSocketOpcode.Text, feed.Reader.Opcode);
        Assert.Equal("Hello", feed.Text);
        Assert.Equal(0, feed.Pending);
    }

    [Fact]
    public void Pong_and_close_between_fragments_do_not_disturb_the_message()
    {
        var bytes = ClientFrames.Concat(
            ClientFrames.Text("ab", fin: false),
            ClientFrames.Build(WebSocketOpcode.Pong, "x"u8),
            ClientFrames.Continuation("cd", fin: false),
            ClientFrames.Ping(""),
            ClientFrames.Continuation("ef"));
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal((WebSocketOpcode.Pong, "x"), (feed.Reader.Opcode, feed.Text));
        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal((WebSocketOpcode.Ping, ""), (feed.Reader.Opcode, feed.Text));
        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal((WebSocketOpcode.Text, "abcdef"), (feed.Reader.Opcode, feed.Text));
    }

    [Fact]
    public void Two_messages_in_one_buffer_come_out_one_per_call()
    {
        var bytes = ClientFrames.Concat(ClientFrames.Text("first"), ClientFrames.Build(WebSocketOpcode.Binary, new byte[] { 1, 2 }), ClientFrames.Text("third"));
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal("first", feed.Text);
        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal(WebSocketOpcode.Binary, feed.Reader.Opcode);
        Assert.Equal(new byte[] { 1, 2 }, feed.Reader.Payload.ToArray());
        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal("third", feed.Text);
        Assert.Equal(WebSocketReadStatus.NeedMoreData, feed.Read());
    }

    [Fact]
    public void Close_frame_payload_parses_to_code_and_reason()
    {
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Build(WebSocketOpcode.Close, [0x03, 0xE8, .. "bye"u8])));
        Assert.Equal(WebSocketOpcode.Close, feed.Reader.Opcode);
        Assert.True(WebSocketFraming.TryParseClosePayload(feed.Reader.Payload, out var code, out var reason));
        Assert.Equal(1000, code);
        Assert.Equal("bye", reason);
    }

    [Fact]
    public void Empty_close_payload_means_1005()
    {
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Build(WebSocketOpcode.Close, [])));
        Assert.Equal(WebSocketOpcode.Close, feed.Reader.Opcode);
        Assert.True(WebSocketFraming.TryParseClosePayload(feed.Reader.Payload, out var code, out var reason));
        Assert.Equal(1005, code);
        Assert.Equal("", reason);
    }

    [Fact]
    public void Close_payload_of_one_byte_or_invalid_utf8_is_rejected()
    {
        Assert.False(WebSocketFraming.TryParseClosePayload([0x03], out _, out _));
        Assert.False(WebSocketFraming.TryParseClosePayload([0x03, 0xE8, 0xC3], out _, out _));
        Assert.True(WebSocketFraming.TryParseClosePayload([0x0F, 0xA0, 0xC3, 0xA9], out var code, out var reason));
        Assert.Equal(4000, code);
        Assert.Equal("\u00e9", reason);
    }

    // ---- protocol errors ------------------------------------------------------------------------

    private static void AssertError(byte[] bytes, ushort code, int limit = Limit)
    {
        var feed = NewFeed(limit);
        Assert.Equal(WebSocketReadStatus.Error, feed.Feed(bytes));
        Assert.Equal(code, feed.Reader.ErrorCode);
        Assert.False(string.IsNullOrEmpty(feed.Reader.ErrorReason));
    }

    [Fact]
    public void A_huge_continuation_length_cannot_overflow_the_size_check() =>
        AssertError(ClientFrames.Concat(
            ClientFrames.Text("0123456789", fin: false),
            ClientFrames.HeaderOnly(WebSocketOpcode.Continuation, long.MaxValue - 5)), CloseStatus.MessageTooBig);

    [Fact]
    public void Unmasked_frame_is_a_protocol_error() =>
        AssertError(ClientFrames.Build(WebSocketOpcode.Text, "hi"u8, masked: false), CloseStatus.ProtocolError);

    [Fact]
    public void Unmasked_frame_is_an_error_with_only_its_first_two_bytes() =>
        AssertError(ClientFrames.Build(WebSocketOpcode.Text, "hi"u8, masked: false)[..2], CloseStatus.ProtocolError);

    [Theory]
    [InlineData(ClientFrames.Rsv1)]
    [InlineData(ClientFrames.Rsv2)]
    [InlineData(ClientFrames.Rsv3)]
    public void Reserved_bits_are_a_protocol_error(byte rsv) =>
        AssertError(ClientFrames.Build(WebSocketOpcode.Text, "hi"u8, rsv: rsv), CloseStatus.ProtocolError);

    [Fact]
    public void Control_frame_over_125_bytes_is_a_protocol_error()
    {
        AssertError(ClientFrames.Build(WebSocketOpcode.Ping, new byte[126]), CloseStatus.ProtocolError);
        AssertError(ClientFrames.Build(WebSocketOpcode.Close, new byte[200]), CloseStatus.ProtocolError);
        // Header alone is enough to tell.
        AssertError(ClientFrames.HeaderOnly(WebSocketOpcode.Pong, 126), CloseStatus.ProtocolError);
    }

    [Fact]
    public void Control_frame_of_exactly_125_bytes_is_accepted()
    {
        var payload = ClientFrames.Pattern(125);
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Build(WebSocketOpcode.Ping, payload)));
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
    }

    [Fact]
    public void Fragmented_control_frame_is_a_protocol_error()
    {
        AssertError(ClientFrames.Build(WebSocketOpcode.Ping, "x"u8, fin: false), CloseStatus.ProtocolError);
        AssertError(ClientFrames.Build(WebSocketOpcode.Close, [0x03, 0xE8], fin: false), CloseStatus.ProtocolError);
    }

    [Fact]
    public void Continuation_without_a_started_message_is_a_protocol_error()
    {
        AssertError(ClientFrames.Continuation("lo"), CloseStatus.ProtocolError);
        // Also after a complete message.
        var feed = NewFeed();
        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Text("done")));
        Assert.Equal(WebSocketReadStatus.Error, feed.Feed(ClientFrames.Continuation("more")));
        Assert.Equal(CloseStatus.ProtocolError, feed.Reader.ErrorCode);
    }

    [Fact]
    public void New_data_frame_inside_a_fragmented_message_is_a_protocol_error() =>
        AssertError(ClientFrames.Concat(ClientFrames.Text("a", fin: false), ClientFrames.Text("b")), CloseStatus.ProtocolError);

    [Theory]
    [InlineData(0x3)]
    [InlineData(0x7)]
    [InlineData(0xB)]
    [InlineData(0xF)]
    public void Unknown_opcode_is_a_protocol_error(byte opcode) =>
        AssertError(ClientFrames.Build(WebSocketOpcode.Text, "x"u8, opcodeBits: opcode), CloseStatus.ProtocolError);

    // ---- size limit -----------------------------------------------------------------------------

    [Fact]
    public void Message_at_the_limit_is_accepted()
    {
        var payload = ClientFrames.Pattern(100);
        var feed = NewFeed(100);

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Build(WebSocketOpcode.Binary, payload)));
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
    }

    [Fact]
    public void Single_frame_over_the_limit_is_1009_with_only_the_header_present()
    {
        AssertError(ClientFrames.HeaderOnly(WebSocketOpcode.Text, 101), CloseStatus.MessageTooBig, limit: 100);
        AssertError(ClientFrames.HeaderOnly(WebSocketOpcode.Text, 200), CloseStatus.MessageTooBig, limit: 100);
        AssertError(ClientFrames.HeaderOnly(WebSocketOpcode.Binary, 70_000), CloseStatus.MessageTooBig, limit: 65_536);
        AssertError(ClientFrames.HeaderOnly(WebSocketOpcode.Binary, 1L << 40), CloseStatus.MessageTooBig, limit: Limit);
        AssertError(ClientFrames.HeaderOnly(WebSocketOpcode.Binary, long.MaxValue), CloseStatus.MessageTooBig, limit: Limit);
    }

    [Fact]
    public void Length_with_the_most_significant_bit_set_is_an_error_not_a_crash()
    {
        var header = ClientFrames.HeaderOnly(WebSocketOpcode.Binary, 70_000);
        header[2] = 0x80; // 64-bit length >= 2^63: RFC 6455 §5.2 says the top bit must be 0
        AssertError(header, CloseStatus.ProtocolError);
    }

    [Fact]
    public void Fragments_adding_up_over_the_limit_are_1009_with_only_the_last_header_present()
    {
        var feed = NewFeed(100);
        var first = ClientFrames.Build(WebSocketOpcode.Text, ClientFrames.Pattern(60), fin: false);

        Assert.Equal(WebSocketReadStatus.NeedMoreData, feed.Feed(first));
        Assert.Equal(0, feed.Pending);
        Assert.Equal(WebSocketReadStatus.Error, feed.Feed(ClientFrames.HeaderOnly(WebSocketOpcode.Continuation, 41)));
        Assert.Equal(CloseStatus.MessageTooBig, feed.Reader.ErrorCode);
    }

    [Fact]
    public void Fragments_adding_up_to_exactly_the_limit_are_accepted()
    {
        var payload = ClientFrames.Pattern(100);
        var feed = NewFeed(100);
        var bytes = ClientFrames.Concat(
            ClientFrames.Build(WebSocketOpcode.Text, payload.AsSpan(0, 60), fin: false),
            ClientFrames.Build(WebSocketOpcode.Continuation, payload.AsSpan(60)));

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
    }

    [Fact]
    public void Limit_counts_each_message_separately()
    {
        var feed = NewFeed(100);
        var bytes = ClientFrames.Concat(
            ClientFrames.Build(WebSocketOpcode.Binary, ClientFrames.Pattern(80)),
            ClientFrames.Build(WebSocketOpcode.Binary, ClientFrames.Pattern(80)));

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal(80, feed.Reader.Payload.Length);
    }

    [Fact]
    public void Control_frames_do_not_count_against_the_message_limit()
    {
        var feed = NewFeed(10);
        var bytes = ClientFrames.Concat(
            ClientFrames.Build(WebSocketOpcode.Text, ClientFrames.Pattern(8), fin: false),
            ClientFrames.Build(WebSocketOpcode.Ping, ClientFrames.Pattern(100)),
            ClientFrames.Build(WebSocketOpcode.Continuation, ClientFrames.Pattern(2)));

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes));
        Assert.Equal(WebSocketOpcode.Ping, feed.Reader.Opcode);
        Assert.Equal(WebSocketReadStatus.Message, feed.Read());
        Assert.Equal(10, feed.Reader.Payload.Length);
    }

    // ---- extended lengths -----------------------------------------------------------------------

    [Theory]
    [InlineData(125, 2)]
    [InlineData(126, 4)]
    [InlineData(65_535, 4)]
    [InlineData(65_536, 10)]
    [InlineData(200_000, 10)]
    public void Extended_payload_lengths(int length, int lengthFieldEnd)
    {
        var payload = ClientFrames.Pattern(length);
        var frame = ClientFrames.Build(WebSocketOpcode.Binary, payload);
        Assert.Equal(lengthFieldEnd + 4 + length, frame.Length);
        var feed = NewFeed();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(frame));
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
        Assert.Equal(0, feed.Pending);
    }

    // ---- partial buffers ------------------------------------------------------------------------

    /// <summary>
    /// Splits <paramref name="bytes"/> at <paramref name="split"/>: the first part must give NeedMoreData,
    /// the rest completes the expected messages.
    /// </summary>
    private static void AssertSplit(byte[] bytes, int split, params (WebSocketOpcode Opcode, byte[] Payload)[] expected)
    {
        var feed = NewFeed();
        var results = new List<(WebSocketOpcode, byte[])>();
        var status = feed.Feed(bytes.AsSpan(0, split));
        while (status == WebSocketReadStatus.Message)
        {
            results.Add((feed.Reader.Opcode, feed.Reader.Payload.ToArray()));
            status = feed.Read();
        }
        Assert.Equal(WebSocketReadStatus.NeedMoreData, status);
        status = feed.Feed(bytes.AsSpan(split));
        while (status == WebSocketReadStatus.Message)
        {
            results.Add((feed.Reader.Opcode, feed.Reader.Payload.ToArray()));
            status = feed.Read();
        }
        Assert.Equal(WebSocketReadStatus.NeedMoreData, status);
        Assert.Equal(0, feed.Pending);
        Assert.Equal(expected.Length, results.Count);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].Opcode, results[i].Item1);
            Assert.Equal(expected[i].Payload, results[i].Item2);
        }
    }

    [Theory]
    [InlineData(5)]
    [InlineData(20)]
    [InlineData(200)]
    [InlineData(70_000)]
    public void A_single_frame_split_at_every_byte_needs_more_data_until_complete(int length)
    {
        var payload = ClientFrames.Pattern(length);
        var frame = ClientFrames.Build(WebSocketOpcode.Text, payload);
        // Every position for small frames; for the 64-bit one every header position and a spread of payload positions.
        var splits = length <= 1000
            ? Enumerable.Range(0, frame.Length)
            : Enumerable.Range(0, 20).Concat(Enumerable.Range(0, 50).Select(i => 14 + (i * 1399))).Append(frame.Length - 1);
        foreach (var split in splits)
        {
            var feed = NewFeed();
            Assert.Equal(WebSocketReadStatus.NeedMoreData, feed.Feed(frame.AsSpan(0, split)));
            Assert.Equal(split, feed.Pending); // nothing consumed from an incomplete frame
            Assert.Equal(WebSocketReadStatus.Message, feed.Feed(frame.AsSpan(split)));
            Assert.Equal(payload, feed.Reader.Payload.ToArray());
        }
    }

    [Fact]
    public void Fragmented_message_with_a_ping_split_at_every_byte()
    {
        var bytes = ClientFrames.Concat(
            ClientFrames.Text("Hello, ", fin: false),
            ClientFrames.Ping("p"),
            ClientFrames.Build(WebSocketOpcode.Continuation, Encoding.UTF8.GetBytes(new string('w', 130)), fin: false),
            ClientFrames.Continuation("orld"));
        var expectedText = Encoding.UTF8.GetBytes("Hello, " + new string('w', 130) + "orld");
        for (var split = 0; split < bytes.Length; split++)
        {
            AssertSplit(bytes, split, (WebSocketOpcode.Ping, "p"u8.ToArray()), (WebSocketOpcode.Text, expectedText));
        }
    }

    [Fact]
    public void Byte_at_a_time()
    {
        var payload = ClientFrames.Pattern(300);
        var bytes = ClientFrames.Concat(
            ClientFrames.Build(WebSocketOpcode.Binary, payload.AsSpan(0, 100), fin: false),
            ClientFrames.Build(WebSocketOpcode.Continuation, payload.AsSpan(100)));
        var feed = NewFeed();

        for (var i = 0; i < bytes.Length - 1; i++)
        {
            Assert.Equal(WebSocketReadStatus.NeedMoreData, feed.Feed(bytes.AsSpan(i, 1)));
        }
        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(bytes.AsSpan(bytes.Length - 1)));
        Assert.Equal(payload, feed.Reader.Payload.ToArray());
    }

    [Fact]
    public void Multi_segment_sequences_split_at_every_byte()
    {
        var payload = ClientFrames.Pattern(140);
        var frame = ClientFrames.Build(WebSocketOpcode.Binary, payload);
        for (var split = 1; split < frame.Length; split++)
        {
            var reader = new WebSocketMessageReader(Limit);
            var sequence = ClientFrames.Segmented(frame, split, split + 3);

            Assert.Equal(WebSocketReadStatus.Message, reader.TryRead(ref sequence));
            Assert.Equal(payload, reader.Payload.ToArray());
            Assert.True(sequence.IsEmpty);
        }
    }

    /// <summary>Empty non-final continuations: a legal (if odd) message that never grows.</summary>
    private static byte[] ManyEmptyFragments(int count)
    {
        var parts = new List<byte[]> { ClientFrames.Build(WebSocketOpcode.Text, "a"u8, fin: false) };
        var empty = ClientFrames.Build(WebSocketOpcode.Continuation, [], fin: false);
        parts.AddRange(Enumerable.Repeat(empty, count));
        parts.Add(ClientFrames.Build(WebSocketOpcode.Continuation, "z"u8));
        return ClientFrames.Concat([.. parts]);
    }

    [Fact]
    public void Thousands_of_fragments_in_one_buffer_are_reassembled()
    {
        var feed = NewFeed(100);

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ManyEmptyFragments(5_000)));
        Assert.Equal("az", feed.Text);
        Assert.Equal(0, feed.Pending);
    }

    [Fact]
    public void Stack_use_does_not_grow_with_the_number_of_fragments_in_one_buffer()
    {
        var bytes = ManyEmptyFragments(100_000);
        var status = WebSocketReadStatus.NeedMoreData;
        var text = "";
        var thread = new Thread(() =>
        {
            var feed = NewFeed(100);
            status = feed.Feed(bytes);
            text = feed.Text;
        }, maxStackSize: 1536 * 1024);

        thread.Start();
        Assert.True(thread.Join(TimeSpan.FromSeconds(10)));
        Assert.Equal(WebSocketReadStatus.Message, status);
        Assert.Equal("az", text);
    }

    [Fact]
    public void Fewer_than_two_bytes_need_more_data()
    {
        var reader = new WebSocketMessageReader(Limit);
        var empty = ReadOnlySequence<byte>.Empty;
        var one = new ReadOnlySequence<byte>(new byte[] { 0x81 });

        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref empty));
        Assert.Equal(WebSocketReadStatus.NeedMoreData, reader.TryRead(ref one));
        Assert.Equal(1, one.Length);
    }

    [Fact]
    public void Release_buffer_is_idempotent_and_reader_stays_usable()
    {
        var feed = NewFeed();
        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Text("one")));
        feed.Reader.ReleaseBuffer();
        feed.Reader.ReleaseBuffer();

        Assert.Equal(WebSocketReadStatus.Message, feed.Feed(ClientFrames.Text("two")));
        Assert.Equal("two", feed.Text);
        Assert.Equal(Limit, feed.Reader.MaxMessageBytes);
    }
}
