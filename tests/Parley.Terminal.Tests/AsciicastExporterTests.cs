using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Terminal.Tests;

/// <summary><see cref="AsciicastExporter"/>: asciicast v2 that strict JSON parsers and the Debian <c>asciinema</c> accept.</summary>
public sealed class AsciicastExporterTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("parley-cast-test-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private RecordingWriter Create() => RecordingWriter.Create(_directory, new RecordingMeta
    {
        Id = "20261203-120000-ca57",
        Name = "it's \"name\"",
        Command = ["sh", "-c", "echo 'x'; printf \"\\n\"", "ü"],
        StartedAt = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero),
        Cols = 132,
        Rows = 43,
    });

    private static (JsonElement Header, List<(double Time, string Code, string Data)> Events, byte[] Raw) Export(string prefix, bool input = false)
    {
        using var buffer = new MemoryStream();
        AsciicastExporter.Write(RecordingReader.Open(prefix), buffer, input);
        var raw = buffer.ToArray();
        Assert.Equal((byte)'\n', raw[^1]);
        var lines = Encoding.UTF8.GetString(raw).Split('\n')[..^1];
        // Strict parsing: a raw control character inside a string, or a lone surrogate, fails here.
        var header = JsonDocument.Parse(lines[0]).RootElement.Clone();
        var events = lines[1..].Select(line =>
        {
            var e = JsonDocument.Parse(line).RootElement;
            Assert.Equal(JsonValueKind.Array, e.ValueKind);
            Assert.Equal(3, e.GetArrayLength());
            return (e[0].GetDouble(), e[1].GetString()!, e[2].GetString()!);
        }).ToList();
        return (header, events, raw);
    }

    [Fact]
    public void The_header_is_version_2_with_the_size_and_the_events_are_timed_output()
    {
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            writer.AppendOutput("hello "u8, 0);
            writer.AppendOutput("world\r\n"u8, 1_500_000);
            writer.AddResize(2_000_000, 100, 30);
            writer.AppendOutput("after resize"u8, 2_250_000);
            writer.Complete(new TerminalExit(0, null), 3_000_000);
        }
        var (header, events, _) = Export(prefix);
        Assert.Equal(2, header.GetProperty("version").GetInt32());
        Assert.Equal(132, header.GetProperty("width").GetInt32());
        Assert.Equal(43, header.GetProperty("height").GetInt32());
        Assert.Equal(new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero).ToUnixTimeSeconds(), header.GetProperty("timestamp").GetInt64());
        Assert.Equal(3.0, header.GetProperty("duration").GetDouble());
        Assert.Equal("it's \"name\"", header.GetProperty("title").GetString());
        Assert.Equal("sh -c 'echo '\\''x'\\''; printf \"\\n\"' 'ü'", header.GetProperty("command").GetString());
        Assert.Equal([(0.0, "o", "hello "), (1.5, "o", "world\r\n"), (2.0, "r", "100x30"), (2.25, "o", "after resize")], events);
    }

    [Fact]
    public void Control_characters_separators_quotes_and_astral_characters_round_trip_through_the_json()
    {
        var text = "nul\0 bel\a esc\x1b[31m del\x7f c1\u0085 ls\u2028 ps\u2029 quote\" backslash\\ slash/ <script>&amp; 😀 \uFEFF tab\t cr\r lf\n";
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            writer.AppendOutput(Encoding.UTF8.GetBytes(text), 10);
            writer.Complete(new TerminalExit(0, null), 20);
        }
        var (_, events, raw) = Export(prefix);
        Assert.Equal(text, string.Concat(events.Where(e => e.Code == "o").Select(e => e.Data)));
        // Every line is one line: control characters are escaped, never raw.
        Assert.DoesNotContain(raw, b => b < 0x20 && b != (byte)'\n');
        Assert.Equal(1 + events.Count, raw.Count(b => b == (byte)'\n'));
        // U+2028 and U+2029 are escaped too: a line of the cast stays one line even for JavaScript's idea of lines.
        Assert.True(raw.AsSpan().IndexOf("\u2028"u8) < 0 && raw.AsSpan().IndexOf("\u2029"u8) < 0, "a raw line or paragraph separator");
        Assert.Contains("\\u2028", Encoding.UTF8.GetString(raw), StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_utf8_becomes_replacement_characters_and_a_character_split_between_chunks_stays_whole()
    {
        byte[] output = [.. "ok "u8, 0xFF, 0xFE, (byte)' ', 0xC3, 0x28, (byte)' ', 0xE2, 0x82, /* chunk split */ 0xAC, (byte)' ', 0xF0, 0x9F, 0x98, /* split */ 0x80, (byte)' ', 0xED, 0xA0, 0x80, (byte)' ', 0xC3];
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            writer.AppendOutput(output.AsSpan(0, 11), 0);
            writer.AppendOutput(output.AsSpan(11, 5), 100_000);
            writer.AppendOutput(output.AsSpan(16), 200_000);
            writer.Complete(new TerminalExit(0, null), 300_000);
        }
        var (_, events, _) = Export(prefix);
        var exported = string.Concat(events.Where(e => e.Code == "o").Select(e => e.Data));
        // The same as decoding the whole stream at once: one U+FFFD per invalid sequence, a trailing cut sequence too.
        Assert.Equal(new UTF8Encoding(false, false).GetString(output), exported);
        Assert.Contains("€", exported, StringComparison.Ordinal);
        Assert.Contains("😀", exported, StringComparison.Ordinal);
        Assert.EndsWith(" \uFFFD", exported, StringComparison.Ordinal);
        Assert.StartsWith("ok \uFFFD\uFFFD ", exported, StringComparison.Ordinal);
    }

    [Fact]
    public void Times_never_decrease_and_input_comes_only_when_asked()
    {
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            for (var i = 0; i < 50; i++)
            {
                writer.AppendOutput(Encoding.ASCII.GetBytes($"line {i}\r\n"), i * 37_000L);
                if (i % 7 == 0)
                {
                    writer.AppendInput("k"u8, i * 37_000L + 5_000);
                    writer.AddResize(i * 37_000L + 6_000, 80 + i, 24);
                }
            }
            writer.Complete(new TerminalExit(0, null), 2_000_000);
        }
        var (_, events, _) = Export(prefix);
        Assert.DoesNotContain(events, e => e.Code == "i");
        var (_, withInput, _) = Export(prefix, input: true);
        Assert.Equal(8, withInput.Count(e => e.Code == "i"));
        Assert.Equal("kkkkkkkk", string.Concat(withInput.Where(e => e.Code == "i").Select(e => e.Data)));
        foreach (var list in new[] { events, withInput })
        {
            for (var i = 1; i < list.Count; i++)
            {
                Assert.True(list[i].Time >= list[i - 1].Time, $"event {i} at {list[i].Time} after {list[i - 1].Time}");
            }
            Assert.Equal(string.Concat(Enumerable.Range(0, 50).Select(i => $"line {i}\r\n")), string.Concat(list.Where(e => e.Code == "o").Select(e => e.Data)));
            Assert.Equal(8, list.Count(e => e.Code == "r"));
        }
    }

    [AsciinemaFact]
    public async Task Asciinema_cat_reproduces_the_output_of_a_real_session()
    {
        var asciinema = FindOnPath("asciinema")!;
        // Colours, UTF-8 split anywhere by the terminal, a cursor dance and a burst: valid UTF-8, so the cast holds it exactly.
        using var run = RecordedRun.Start("sh", "-c",
            "printf '\\033[1;32mgreen\\033[0m ünïcødé ✓ 😀\\n'; i=0; while [ $i -lt 300 ]; do printf 'row %d ░▒▓ \\033[K\\n' $i; i=$((i+1)); done; printf '\\033[2J\\033[Hdone\\r\\n'");
        await run.ExitAsync();
        var output = run.OutputFile;
        Assert.True(output.Length > 5000, $"{output.Length} bytes");

        var cast = Path.Combine(_directory, "s.cast");
        await using (var file = File.Create(cast))
        {
            AsciicastExporter.Write(run.Open(), file);
        }
        // asciinema cat talks to /dev/tty (it sets it raw), so it runs under a terminal of its own; its stdout goes to a file.
        var printed = Path.Combine(_directory, "printed");
        using var player = new PtyHarness(new PtyStartInfo
        {
            File = "sh",
            Arguments = ["-c", "exec \"$0\" cat \"$1\" > \"$2\"", asciinema, cast, printed],
            ExtraEnvironment = new Dictionary<string, string> { ["LANG"] = "C.UTF-8", ["LC_ALL"] = "C.UTF-8", ["PYTHONIOENCODING"] = "utf-8" },
        });
        var exit = await player.ExitAsync();
        Assert.True(exit.Code == 0, $"asciinema cat exited {exit.Code}: {player.Text}");
        Assert.Equal(Encoding.UTF8.GetString(output), Encoding.UTF8.GetString(await File.ReadAllBytesAsync(printed)));
        Assert.Equal(output, await File.ReadAllBytesAsync(printed));
    }

    internal static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);
}

/// <summary>A fact that is skipped, saying why, when <c>asciinema</c> is not on PATH (scripts/test installs it).</summary>
public sealed class AsciinemaFactAttribute : FactAttribute
{
    public AsciinemaFactAttribute()
    {
        if (AsciicastExporterTests.FindOnPath("asciinema") is null)
        {
            Skip = "asciinema is not on PATH: install the Debian package (apt-get install asciinema; scripts/test does)";
        }
    }
}
