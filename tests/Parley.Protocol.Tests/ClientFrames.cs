using System.Buffers;
using System.Text;

namespace Parley.Protocol.Tests;

/// <summary>A tiny client-side RFC 6455 frame builder (masked with a fixed key unless told otherwise).</summary>
internal static class ClientFrames
{
    /// <summary>The masking key of RFC 6455 §5.7's examples.</summary>
    public static readonly byte[] Key = [0x37, 0xFA, 0x21, 0x3D];

    /// <summary>RSV1, RSV2, RSV3 bits of the first header byte.</summary>
    public const byte Rsv1 = 0x40, Rsv2 = 0x20, Rsv3 = 0x10;

    /// <summary>
    /// A client frame. <paramref name="declaredLength"/> overrides the length written in the header
    /// (to build a header that announces more than is present).
    /// </summary>
    public static byte[] Build(WebSocketOpcode opcode, ReadOnlySpan<byte> payload, bool fin = true, bool masked = true, byte rsv = 0, long? declaredLength = null, byte opcodeBits = 0xFF)
    {
        var length = declaredLength ?? payload.Length;
        var header = new List<byte>(14)
        {
            (byte)((fin ? 0x80 : 0) | rsv | (opcodeBits == 0xFF ? (byte)opcode : opcodeBits)),
        };
        var maskBit = masked ? 0x80 : 0;
        if (length <= 125)
        {
            header.Add((byte)(maskBit | (int)length));
        }
        else if (length <= ushort.MaxValue)
        {
            header.Add((byte)(maskBit | 126));
            header.Add((byte)(length >> 8));
            header.Add((byte)length);
        }
        else
        {
            header.Add((byte)(maskBit | 127));
            for (var shift = 56; shift >= 0; shift -= 8)
            {
                header.Add((byte)(length >> shift));
            }
        }
        if (masked)
        {
            header.AddRange(Key);
        }
        var frame = new byte[header.Count + payload.Length];
        header.CopyTo(frame);
        for (var i = 0; i < payload.Length; i++)
        {
            frame[header.Count + i] = masked ? (byte)(payload[i] ^ Key[i % 4]) : payload[i];
        }
        return frame;
    }

    public static byte[] Text(string text, bool fin = true) => Build(WebSocketOpcode.Text, Encoding.UTF8.GetBytes(text), fin);

    public static byte[] Continuation(string text, bool fin = true) => Build(WebSocketOpcode.Continuation, Encoding.UTF8.GetBytes(text), fin);

    public static byte[] Ping(string text) => Build(WebSocketOpcode.Ping, Encoding.UTF8.GetBytes(text));

    /// <summary>Only the header (with masking key) of a frame announcing <paramref name="declaredLength"/> bytes.</summary>
    public static byte[] HeaderOnly(WebSocketOpcode opcode, long declaredLength, bool fin = true) =>
        Build(opcode, [], fin, declaredLength: declaredLength);

    public static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    /// <summary>Deterministic non-trivial payload bytes.</summary>
    public static byte[] Pattern(int length)
    {
        var bytes = new byte[length];
        for (var i = 0; i < length; i++)
        {
            bytes[i] = (byte)((i * 31) + 7);
        }
        return bytes;
    }

    /// <summary>A sequence made of several segments, split at <paramref name="splits"/>.</summary>
    public static ReadOnlySequence<byte> Segmented(byte[] data, params int[] splits)
    {
        var bounds = splits.Where(s => s > 0 && s < data.Length).Distinct().Order().Append(data.Length).ToArray();
        Segment? first = null, last = null;
        var start = 0;
        foreach (var end in bounds)
        {
            var memory = data.AsMemory(start, end - start);
            if (first is null)
            {
                first = last = new Segment(memory, 0);
            }
            else
            {
                last = last!.Append(memory);
            }
            start = end;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}

/// <summary>Feeds a <see cref="WebSocketMessageReader"/> like a socket does: appends what arrived to what was left unconsumed.</summary>
internal sealed class ReaderFeed(WebSocketMessageReader reader)
{
    private byte[] _pending = [];

    public WebSocketMessageReader Reader { get; } = reader;

    /// <summary>Bytes not yet consumed by the reader.</summary>
    public int Pending => _pending.Length;

    /// <summary>Appends <paramref name="chunk"/> and reads once.</summary>
    public WebSocketReadStatus Feed(ReadOnlySpan<byte> chunk)
    {
        var all = new byte[_pending.Length + chunk.Length];
        _pending.CopyTo(all, 0);
        chunk.CopyTo(all.AsSpan(_pending.Length));
        var sequence = new ReadOnlySequence<byte>(all);
        var status = Reader.TryRead(ref sequence);
        _pending = sequence.ToArray();
        return status;
    }

    /// <summary>Reads again without new bytes.</summary>
    public WebSocketReadStatus Read() => Feed([]);

    public string Text => Encoding.UTF8.GetString(Reader.Payload);
}
