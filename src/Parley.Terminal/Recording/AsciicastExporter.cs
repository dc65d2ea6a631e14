using System.Globalization;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Parley.Terminal.Recording;

/// <summary>
/// Writes a recording as asciicast v2 (a JSON header line, then one <c>[time, code, data]</c> line per event):
/// output as <c>"o"</c> events split at the time index, resizes as <c>"r"</c> <c>"COLSxROWS"</c>, and input as
/// <c>"i"</c> when asked. Data is decoded as UTF-8 with one decoder per stream, so a character split between two
/// chunks stays whole; invalid bytes become U+FFFD (the raw bytes stay exact only in the recording itself).
/// </summary>
public static class AsciicastExporter
{
    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Writes <paramref name="recording"/> to <paramref name="destination"/> (UTF-8, one event per line).</summary>
    public static void Write(RecordingReader recording, Stream destination, bool includeInput = false)
    {
        var meta = recording.Meta;
        WriteLine(destination, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("version", 2);
            w.WriteNumber("width", meta.Cols);
            w.WriteNumber("height", meta.Rows);
            w.WriteNumber("timestamp", meta.StartedAt.ToUnixTimeSeconds());
            if (meta.DurationUs is { } duration)
            {
                w.WriteNumber("duration", duration / 1e6);
            }
            w.WriteString("command", string.Join(' ', meta.Command.Select(Quote)));
            w.WriteString("title", meta.Name);
            w.WriteEndObject();
        });

        var streams = new List<IEnumerator<(long TimeUs, string Code, string Data)>>
        {
            Decode(recording.OutputChunks(), "o").GetEnumerator(),
            meta.Resizes.Select(r => (r.TUs, "r", $"{r.Cols}x{r.Rows}")).GetEnumerator(),
        };
        if (includeInput)
        {
            streams.Add(Decode(recording.InputChunks(), "i").GetEnumerator());
        }
        // Merge by time; at equal times the earlier stream in the list (output) goes first.
        var live = streams.Where(s => s.MoveNext()).ToList();
        while (live.Count > 0)
        {
            var next = live.MinBy(s => s.Current.TimeUs)!;
            var (time, code, data) = next.Current;
            WriteLine(destination, w =>
            {
                w.WriteStartArray();
                w.WriteRawValue((time / 1e6).ToString("0.000000", CultureInfo.InvariantCulture));
                w.WriteStringValue(code);
                w.WriteStringValue(data);
                w.WriteEndArray();
            });
            if (!next.MoveNext())
            {
                live.Remove(next);
            }
        }
        destination.Flush();
    }

    private static IEnumerable<(long, string, string)> Decode(IEnumerable<(long TimeUs, byte[] Data)> chunks, string code)
    {
        var decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
        var chars = Array.Empty<char>();
        long last = 0;
        foreach (var (time, data) in chunks)
        {
            last = time;
            var needed = decoder.GetCharCount(data, flush: false);
            if (chars.Length < needed)
            {
                chars = new char[needed];
            }
            var n = decoder.GetChars(data, chars, flush: false);
            if (n > 0)
            {
                yield return (time, code, new string(chars, 0, n));
            }
        }
        // An incomplete sequence at the very end becomes U+FFFD.
        var tail = new char[4];
        var rest = decoder.GetChars([], tail, flush: true);
        if (rest > 0)
        {
            yield return (last, code, new string(tail, 0, rest));
        }
    }

    private static void WriteLine(Stream destination, Action<Utf8JsonWriter> write)
    {
        using (var writer = new Utf8JsonWriter(destination, WriterOptions))
        {
            write(writer);
        }
        destination.WriteByte((byte)'\n');
    }

    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./=:,+@%".Contains(c, StringComparison.Ordinal))
            ? arg
            : "'" + arg.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
