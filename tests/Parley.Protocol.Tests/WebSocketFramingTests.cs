using System.Text;

namespace Parley.Protocol.Tests;

/// <summary>Handshake accept key and close frames (RFC 6455 §1.3, §5.5.1).</summary>
public class WebSocketFramingTests
{
    /// <summary>
    /// RFC 6455 §1.3 (and §11.3.3): key "dGhlIHNhbXBsZSBub25jZQ==" gives "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".
    /// (SHA-1 of key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", base64.)
    /// </summary>
    [Fact]
    public void Accept_key_of_the_rfc_example() =>
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", WebSocketFraming.ComputeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="));

    [Fact]
    public void Accept_key_ignores_surrounding_whitespace() =>
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", WebSocketFraming.ComputeAcceptKey("  dGhlIHNhbXBsZSBub25jZQ== "));

    [Fact]
    public void Accept_key_differs_per_key() =>
        Assert.NotEqual(WebSocketFraming.ComputeAcceptKey("dGhlIHNhbXBsZSBub25jZQ=="), WebSocketFraming.ComputeAcceptKey("x3JJHMbDL1EzLkh9GBhXDw=="));

    [Fact]
    public void Close_frame_with_code_and_reason()
    {
        var frame = WebSocketFraming.EncodeClose(CloseStatus.GoingAway, "bye");

        Assert.Equal(new byte[] { 0x88, 5, 0x03, 0xE9, (byte)'b', (byte)'y', (byte)'e' }, frame);
    }

    [Fact]
    public void Close_frame_with_empty_reason_is_just_the_code()
    {
        Assert.Equal(new byte[] { 0x88, 2, 0x0F, 0xA8 }, WebSocketFraming.EncodeClose(CloseStatus.SlowConsumer, ""));
        Assert.Equal(new byte[] { 0x88, 2, 0x11, 0x33 }, WebSocketFraming.EncodeClose(CloseStatus.Forbidden, ""));
    }

    [Fact]
    public void Close_reason_is_never_longer_than_123_bytes_and_never_splits_a_character()
    {
        foreach (var reason in new[]
        {
            new string('a', 500),
            new string('\u00e9', 100),
            string.Concat(Enumerable.Repeat("\U0001F600", 50)),
            "a" + string.Concat(Enumerable.Repeat("\u2603", 60)),
        })
        {
            var frame = WebSocketFraming.EncodeClose(1000, reason);

            Assert.Equal(0x88, frame[0]);
            Assert.Equal(frame.Length - 2, frame[1]);
            Assert.True(frame[1] <= 125);
            Assert.True(WebSocketFraming.TryParseClosePayload(frame.AsSpan(2), out var code, out var parsed)); // strict UTF-8
            Assert.Equal(1000, code);
            Assert.StartsWith(parsed, reason, StringComparison.Ordinal);
            Assert.True(parsed.Length > 0);
        }
    }

    [Fact]
    public void Close_reason_that_fits_is_kept_whole()
    {
        var reason = new string('r', 100) + "\u00e9";
        var frame = WebSocketFraming.EncodeClose(CloseStatus.InternalError, reason);

        Assert.True(WebSocketFraming.TryParseClosePayload(frame.AsSpan(2), out var code, out var parsed));
        Assert.Equal(CloseStatus.InternalError, code);
        Assert.Equal(reason, parsed);
    }

    [Fact]
    public void Close_reason_uses_all_123_bytes()
    {
        var frame = WebSocketFraming.EncodeClose(1000, new string('a', 200));

        Assert.Equal(127, frame.Length);
        Assert.Equal(125, frame[1]);
        Assert.Equal(Encoding.ASCII.GetBytes(new string('a', 123)), frame[4..]);

        // 122 ASCII bytes + a two-byte character (124 bytes): the character must be dropped, not split.
        var mixed = WebSocketFraming.EncodeClose(1000, new string('b', 122) + "\u00e9");
        Assert.Equal(124, mixed[1]);

        // Exactly 123 bytes fit whole.
        var exact = new string('c', 121) + "\u00e9";
        Assert.True(WebSocketFraming.TryParseClosePayload(WebSocketFraming.EncodeClose(1000, exact).AsSpan(2), out _, out var parsed));
        Assert.Equal(exact, parsed);
    }

    [Fact]
    public void Header_length()
    {
        Assert.Equal(2, WebSocketFraming.HeaderLength(0));
        Assert.Equal(2, WebSocketFraming.HeaderLength(125));
        Assert.Equal(4, WebSocketFraming.HeaderLength(126));
        Assert.Equal(4, WebSocketFraming.HeaderLength(65_535));
        Assert.Equal(10, WebSocketFraming.HeaderLength(65_536));
        Assert.Equal(10, WebSocketFraming.HeaderLength(int.MaxValue + 1L));
    }

    [Fact]
    public void WriteHeader_for_a_large_length_writes_64_bits_big_endian()
    {
        var header = new byte[10];
        var written = WebSocketFraming.WriteHeader(header, WebSocketOpcode.Binary, 0x0102030405L);

        Assert.Equal(10, written);
        Assert.Equal(new byte[] { 0x82, 127, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05 }, header);
    }
}
