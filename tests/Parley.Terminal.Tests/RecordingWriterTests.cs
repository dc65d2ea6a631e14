using System.Text;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Terminal.Tests;

/// <summary><see cref="RecordingWriter"/> and <see cref="RecordingReader"/> on files, with times the test chooses.</summary>
public sealed class RecordingWriterTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("parley-writer-test-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private RecordingWriter Create(string id = "20261203-120000-ab12") => RecordingWriter.Create(_directory, new RecordingMeta
    {
        Id = id,
        Name = "test",
        Command = ["test"],
        StartedAt = new DateTimeOffset(2026, 12, 3, 12, 0, 0, TimeSpan.Zero),
        Cols = 80,
        Rows = 24,
    });

    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Fact]
    public void Steady_activity_gets_an_index_entry_at_least_every_100_ms()
    {
        using var writer = Create();
        var appended = new List<(long Offset, long TimeUs)>();
        // A chunk every 3 ms for 2 s, then a pause, then a chunk every 7 ms.
        long t = 0;
        for (var i = 0; i < 700; i++)
        {
            t += i == 667 ? 1_500_000 : i > 667 ? 7_000 : 3_000;
            appended.Add((writer.AppendOutput(Pattern(1 + i % 50, i), t), t));
        }
        writer.Complete(new TerminalExit(0, null), t + 1);
        var index = RecordingReader.Open(writer.Prefix).OutputIndex().ToList();
        RecordedRun.AssertIndexWellFormed(index, writer.OutputLength);
        Assert.True(index.Count > 2, $"{index.Count} entries");
        // Every chunk is covered by an entry (the last at or before its offset) at most 100 ms older than it.
        foreach (var (offset, time) in appended)
        {
            var covering = index.Last(e => e.Offset <= offset);
            Assert.True(time - covering.TimeUs <= 100_000, $"chunk at {offset} ({time} µs) covered by {covering}");
            Assert.True(covering.TimeUs <= time, $"chunk at {offset} ({time} µs) covered by a later entry {covering}");
        }
        // After the pause the first chunk starts an entry at its own offset and time.
        Assert.Contains(new TimeIndexEntry(appended[667].Offset, appended[667].TimeUs), index);
        Assert.Equal(new TimeIndexEntry(writer.OutputLength, t + 1), index[^1]);
    }

    [Fact]
    public void A_clock_that_goes_back_never_makes_the_index_go_back()
    {
        using var writer = Create();
        writer.AppendOutput("a"u8, 50_000);
        writer.AppendOutput("b"u8, 10_000);
        writer.AppendOutput("c"u8, 200_000);
        writer.AppendOutput("d"u8, 100_000);
        writer.Complete(new TerminalExit(0, null), 0);
        var index = RecordingReader.Open(writer.Prefix).OutputIndex().ToList();
        RecordedRun.AssertIndexWellFormed(index, 4);
        Assert.Equal(new TimeIndexEntry(0, 50_000), index[0]);
        Assert.Equal(new TimeIndexEntry(2, 200_000), index[1]);
        Assert.Equal(new TimeIndexEntry(4, 200_000), index[^1]);
    }

    [Fact]
    public void The_index_is_text_lines_of_offset_and_microseconds()
    {
        using var writer = Create();
        writer.AppendOutput("hello"u8, 1_000);
        writer.AppendOutput(" world"u8, 250_000);
        writer.AppendInput("x"u8, 300_000);
        writer.Complete(new TerminalExit(0, null), 400_000);
        Assert.Equal("0 1000\n5 250000\n11 400000\n", File.ReadAllText(writer.Prefix + ".output.tidx"));
        Assert.Equal("0 300000\n1 400000\n", File.ReadAllText(writer.Prefix + ".input.tidx"));
        Assert.Equal("hello world", File.ReadAllText(writer.Prefix + ".output"));
        Assert.Throws<ObjectDisposedException>(() => writer.AppendOutput("late"u8, 500_000));
        if (!OperatingSystem.IsWindows())
        {
            foreach (var suffix in new[] { ".output", ".input", ".output.tidx", ".input.tidx", ".meta.json" })
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(writer.Prefix + suffix));
            }
        }
    }

    [Fact]
    public void A_second_recording_with_the_same_id_is_refused_and_the_first_is_untouched()
    {
        using var first = Create();
        first.AppendOutput("kept"u8, 0);
        Assert.ThrowsAny<IOException>(() => Create());
        Assert.Equal("kept", File.ReadAllText(first.Prefix + ".output"));
        Assert.Throws<ArgumentException>(() => Create("Bad/Id"));
    }

    [Fact]
    public void Reader_ranges_are_byte_exact_anywhere_in_the_stream()
    {
        var data = Pattern(300_000, 7);
        using (var writer = Create())
        {
            for (var at = 0; at < data.Length; at += 4096)
            {
                writer.AppendOutput(data.AsSpan(at, Math.Min(4096, data.Length - at)), at * 10L);
            }
            // Readable while the recording runs, before Complete.
            var live = RecordingReader.Open(writer.Prefix);
            Assert.Equal(data.Length, live.OutputLength);
            Assert.Equal(data.AsSpan(4000, 200).ToArray(), live.ReadOutput(4000, 200));
            writer.Complete(new TerminalExit(0, null), data.Length * 10L);
        }
        var reader = RecordingReader.Open(Path.Combine(_directory, "20261203-120000-ab12"));
        foreach (var (offset, limit) in new[] { (0L, 1), (0L, data.Length), (1L, 4095), (4095L, 2), (123_457L, 65_536), (data.Length - 1L, 10), (data.Length - 100L, 100) })
        {
            Assert.Equal(data.AsSpan((int)offset, (int)Math.Min(limit, data.Length - offset)).ToArray(), reader.ReadOutput(offset, limit));
        }
        Assert.Empty(reader.ReadOutput(data.Length, 10));
        Assert.Empty(reader.ReadOutput(data.Length + 1000L, 10));
        Assert.Empty(reader.ReadOutput(10, 0));
        Assert.Empty(reader.ReadInput(0, 10));
        Assert.Throws<ArgumentOutOfRangeException>(() => reader.ReadOutput(-1, 10));
        Assert.Equal(data.Length, reader.ReadOutput(0, int.MaxValue).Length);

        // Chunks follow the index: each starts at an entry (or continues one past maxChunk) and carries its time.
        var chunks = reader.OutputChunks(1000).ToList();
        Assert.Equal(data, chunks.SelectMany(c => c.Data).ToArray());
        Assert.All(chunks, c => Assert.InRange(c.Data.Length, 1, 1000));
        Assert.Equal(chunks.Select(c => c.TimeUs).Order().ToList(), chunks.Select(c => c.TimeUs).ToList());
    }

    [Fact]
    public void OpenForAppend_continues_the_streams_the_index_and_the_meta()
    {
        var first = Pattern(10_000, 1);
        var second = Pattern(7_000, 2);
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            writer.AppendOutput(first, 1_000);
            writer.AppendInput("abc"u8, 2_000);
            writer.AddResize(3_000, 100, 50);
        } // cut short: no Complete

        var cut = RecordingReader.Open(prefix);
        Assert.Null(cut.Meta.EndedAt);
        Assert.Equal(first.Length, cut.OutputLength);

        using (var writer = RecordingWriter.OpenForAppend(prefix))
        {
            Assert.Equal(first.Length, writer.OutputLength);
            Assert.Equal(3, writer.InputLength);
            Assert.Equal(first.Length, writer.AppendOutput(second, 500_000));
            Assert.Equal(3, writer.AppendInput("de"u8, 600_000));
            writer.AddResize(700_000, 120, 60);
            writer.Complete(new TerminalExit(null, 15), 800_000);
        }

        var reader = RecordingReader.Open(prefix);
        Assert.Equal([.. first, .. second], File.ReadAllBytes(prefix + ".output"));
        Assert.Equal("abcde", File.ReadAllText(prefix + ".input"));
        var output = reader.OutputIndex().ToList();
        RecordedRun.AssertIndexWellFormed(output, first.Length + second.Length);
        Assert.Equal([new(0, 1_000), new(first.Length, 500_000), new(first.Length + second.Length, 800_000)], output);
        var input = reader.InputIndex().ToList();
        Assert.Equal([new(0, 2_000), new(3, 600_000), new(5, 800_000)], input);
        Assert.Equal([(3_000L, 100, 50), (700_000L, 120, 60)], reader.Meta.Resizes.Select(r => (r.TUs, r.Cols, r.Rows)).ToArray());
        Assert.Equal((first.Length + second.Length, 5L, 15, (int?)null), (reader.Meta.OutputBytes!.Value, reader.Meta.InputBytes!.Value, reader.Meta.Signal!.Value, reader.Meta.ExitCode));
        Assert.Equal(800_000, reader.Meta.DurationUs);

        Assert.Throws<InvalidOperationException>(() => RecordingWriter.OpenForAppend(prefix));
        Assert.Throws<FileNotFoundException>(() => RecordingWriter.OpenForAppend(Path.Combine(_directory, "missing")));
    }

    [Fact]
    public void OpenForAppend_after_a_crash_mid_index_line_keeps_the_new_entries_readable()
    {
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            writer.AppendOutput("before"u8, 1_000);
        }
        // The recorder died while writing an index line.
        File.AppendAllText(prefix + ".output.tidx", "6 12");
        using (var writer = RecordingWriter.OpenForAppend(prefix))
        {
            writer.AppendOutput("after"u8, 900_000);
            writer.Complete(new TerminalExit(0, null), 1_000_000);
        }
        var reader = RecordingReader.Open(prefix);
        Assert.Equal("beforeafter", Encoding.ASCII.GetString(reader.ReadOutput(0, 100)));
        Assert.Equal([new(0, 1_000), new(6, 900_000), new(11, 1_000_000)], reader.OutputIndex().ToList());
    }

    [Fact]
    public void A_recording_cut_short_reads_as_running_with_whatever_reached_the_files()
    {
        string prefix;
        using (var writer = Create())
        {
            prefix = writer.Prefix;
            writer.AppendOutput("partial"u8, 5_000);
        }
        var reader = RecordingReader.Open(prefix);
        Assert.Null(reader.Meta.EndedAt);
        Assert.Null(reader.Meta.ExitCode);
        Assert.Null(reader.Meta.OutputBytes);
        Assert.Equal(7, reader.OutputLength);
        Assert.Equal([new TimeIndexEntry(0, 5_000)], reader.OutputIndex().ToList());
        Assert.Equal("partial"u8.ToArray(), reader.OutputChunks().Single().Data);
        Assert.Equal(prefix, RecordingLocator.Resolve("20261203-120000-ab12", _directory));
        Assert.Equal(prefix, RecordingLocator.Resolve(prefix + ".meta.json", "/nonexistent"));
        Assert.Null(RecordingLocator.Resolve("20261203-120000-ffff", _directory));
        Assert.Equal(prefix, Assert.Single(RecordingLocator.List(_directory)).Prefix);
    }
}
