using System.Buffers.Text;
using System.Text;

namespace Parley.Bench.Protocols;

/// <summary>
/// Reads the few fields the bench needs straight from compact JSON bytes (all three servers write JSON
/// without whitespace, and the bench's own strings need no escaping), so the receive path neither
/// allocates nor parses whole documents.
/// </summary>
internal static class AsciiScan
{
    /// <summary>
    /// Reads one array element that is a string (returned without quotes) or <c>null</c>, starting at
    /// <paramref name="pos"/>, and moves past the comma after it. False when the bytes are not that shape.
    /// </summary>
    public static bool NextStringOrNull(ReadOnlySpan<byte> s, ref int pos, out ReadOnlySpan<byte> value, out bool isNull)
    {
        value = default;
        isNull = false;
        if (pos >= s.Length)
        {
            return false;
        }
        if (s[pos] == (byte)'"')
        {
            var end = s[(pos + 1)..].IndexOf((byte)'"');
            if (end < 0)
            {
                return false;
            }
            value = s.Slice(pos + 1, end);
            pos += end + 2;
        }
        else if (s[pos..].StartsWith("null"u8))
        {
            isNull = true;
            pos += 4;
        }
        else
        {
            return false;
        }
        if (pos >= s.Length || s[pos] != (byte)',')
        {
            return false;
        }
        pos++;
        return true;
    }

    /// <summary>The integer right after <paramref name="key"/> (e.g. <c>"offset":</c>), or -1 when absent.</summary>
    public static long LongAfter(ReadOnlySpan<byte> s, ReadOnlySpan<byte> key)
    {
        var at = s.IndexOf(key);
        if (at < 0)
        {
            return -1;
        }
        return Utf8Parser.TryParse(s[(at + key.Length)..], out long value, out _) ? value : -1;
    }

    /// <summary>The string value after <paramref name="key"/> (which ends with the opening quote), or empty.</summary>
    public static ReadOnlySpan<byte> StringAfter(ReadOnlySpan<byte> s, ReadOnlySpan<byte> key)
    {
        var at = s.IndexOf(key);
        if (at < 0)
        {
            return default;
        }
        var rest = s[(at + key.Length)..];
        var end = rest.IndexOf((byte)'"');
        return end < 0 ? default : rest[..end];
    }

    /// <summary>A decimal id such as a ref or invocation id; false for anything else (e.g. the heartbeat's ref).</summary>
    public static bool TryParseId(ReadOnlySpan<byte> digits, out long id) =>
        Utf8Parser.TryParse(digits, out id, out var consumed) && consumed == digits.Length && digits.Length > 0;

    /// <summary>Copies <paramref name="text"/> (ASCII) into <paramref name="destination"/> at <paramref name="pos"/>.</summary>
    public static void Put(Span<byte> destination, ref int pos, ReadOnlySpan<byte> text)
    {
        text.CopyTo(destination[pos..]);
        pos += text.Length;
    }

    /// <summary>Writes <paramref name="value"/> in decimal at <paramref name="pos"/>.</summary>
    public static void Put(Span<byte> destination, ref int pos, long value)
    {
        if (!Utf8Formatter.TryFormat(value, destination[pos..], out var written))
        {
            throw new ArgumentException("buffer too small", nameof(destination));
        }
        pos += written;
    }

    /// <summary>For error messages: the bytes as text, cut to <paramref name="max"/> characters.</summary>
    public static string Show(ReadOnlySpan<byte> s, int max = 200)
    {
        var text = Encoding.UTF8.GetString(s.Length > max ? s[..max] : s);
        return s.Length > max ? text + "…" : text;
    }
}
