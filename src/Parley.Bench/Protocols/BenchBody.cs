using System.Buffers.Text;

namespace Parley.Bench.Protocols;

/// <summary>
/// The message body every target carries: ASCII, exactly <c>size</c> bytes, <c>t=&lt;Stopwatch
/// timestamp&gt;;</c> then <c>x</c> padding. No character needs JSON escaping, so the same bytes appear
/// verbatim inside each protocol's JSON and a receiver finds the timestamp without parsing JSON.
/// </summary>
internal static class BenchBody
{
    /// <summary>What a body starts with, including the opening quote of the JSON string around it.</summary>
    public static ReadOnlySpan<byte> QuotedMarker => "\"t="u8;

    /// <summary>Writes a body of exactly <paramref name="size"/> bytes stamped with <paramref name="timestamp"/>; returns <paramref name="size"/>.</summary>
    public static int Write(Span<byte> destination, int size, long timestamp)
    {
        var body = destination[..size];
        body[0] = (byte)'t';
        body[1] = (byte)'=';
        if (!Utf8Formatter.TryFormat(timestamp, body[2..], out var digits) || 2 + digits >= size)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, "the body is too small for its timestamp");
        }
        body[2 + digits] = (byte)';';
        body[(3 + digits)..].Fill((byte)'x');
        return size;
    }

    /// <summary>Finds the first body in <paramref name="text"/> and reads its timestamp; false when there is none.</summary>
    public static bool TryReadTimestamp(ReadOnlySpan<byte> text, out long timestamp)
    {
        var at = text.IndexOf(QuotedMarker);
        if (at < 0)
        {
            timestamp = 0;
            return false;
        }
        return Utf8Parser.TryParse(text[(at + QuotedMarker.Length)..], out timestamp, out _);
    }
}
