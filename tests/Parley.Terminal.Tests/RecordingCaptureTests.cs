using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Parley.Terminal.Pty;
using Parley.Terminal.Recording;

namespace Parley.Terminal.Tests;

/// <summary>
/// What <see cref="TerminalSession"/> records from a real pseudo-terminal (docs/terminal-recordings.md): the raw
/// bytes, the time indexes and the meta.
/// </summary>
public sealed class RecordingCaptureTests
{
    [Fact]
    public async Task Invalid_utf8_is_recorded_as_the_bytes_the_program_wrote()
    {
        using var run = RecordedRun.Start("printf", "\\377\\376\\303");
        var exit = await run.ExitAsync();
        Assert.Equal(new TerminalExit(0, null), exit);
        Assert.Equal(new byte[] { 0xFF, 0xFE, 0xC3 }, run.OutputFile);
        Assert.Equal(run.OutputFile, run.LocalOutput);
        Assert.Equal(run.OutputFile, run.Open().ReadOutput(0, 100));
    }

    [Fact]
    public async Task Without_raw_mode_the_terminal_turns_newlines_into_crlf_and_the_recording_holds_what_the_terminal_passed()
    {
        using var run = RecordedRun.Start("printf", "a\\nb\\r\\n\\033[1mc\\000");
        await run.ExitAsync();
        Assert.Equal("a\r\nb\r\r\n\x1b[1mc\0"u8.ToArray(), run.OutputFile);
    }

    [Fact]
    public async Task A_10_MiB_burst_of_every_byte_value_is_recorded_byte_for_byte()
    {
        const int size = 10 * 1024 * 1024;
        var directory = Directory.CreateTempSubdirectory("parley-burst-").FullName;
        try
        {
            // A deterministic pattern over all 256 byte values; a raw terminal (-opost) passes every one unchanged.
            var data = new byte[size];
            new Random(20261203).NextBytes(data);
            var source = Path.Combine(directory, "burst.bin");
            await File.WriteAllBytesAsync(source, data);

            using var run = RecordedRun.Start("sh", "-c", "stty raw -echo && cat \"$1\"", "sh", source);
            var exit = await run.ExitAsync();
            Assert.Equal(0, exit.Code);

            var recorded = run.OutputFile;
            Assert.Equal(size, recorded.Length);
            Assert.Equal(Convert.ToHexString(SHA256.HashData(data)), Convert.ToHexString(SHA256.HashData(recorded)));
            Assert.Equal(Convert.ToHexString(SHA256.HashData(data)), Convert.ToHexString(SHA256.HashData(run.LocalOutput)));

            var reader = run.Open();
            Assert.Equal(size, reader.OutputLength);
            Assert.Equal(size, reader.Meta.OutputBytes);
            var index = reader.OutputIndex().ToList();
            RecordedRun.AssertIndexWellFormed(index, size);
            // The chunks the index cuts the stream into put it back together.
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            foreach (var (_, chunk) in reader.OutputChunks(256 * 1024))
            {
                sha.AppendData(chunk);
            }
            Assert.Equal(Convert.ToHexString(SHA256.HashData(data)), Convert.ToHexString(sha.GetHashAndReset()));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Output_after_a_pause_gets_an_index_entry_with_a_time_no_earlier_than_it_was_written()
    {
        using var run = RecordedRun.Start("sh", "-c", "printf A; sleep 0.5; printf B; sleep 0.5; printf C");
        await run.ExitAsync();
        Assert.Equal("ABC"u8.ToArray(), run.OutputFile);
        var index = run.Open().OutputIndex().ToList();
        RecordedRun.AssertIndexWellFormed(index, 3);
        // Each letter comes more than 10 ms after the last entry, so each starts an entry of its own
        // (two letters in one read would need the reader to stall for half a second).
        Assert.Equal([0L, 1L, 2L, 3L], index.Select(e => e.Offset).ToArray());
        // The entry time is when the bytes were read: never before they were written (0.5 s and 1 s in).
        Assert.True(index[1].TimeUs >= 500_000, $"B at {index[1].TimeUs} µs");
        Assert.True(index[2].TimeUs >= 1_000_000, $"C at {index[2].TimeUs} µs");
        Assert.True(index[2].TimeUs - index[1].TimeUs >= 400_000, $"B at {index[1].TimeUs} µs, C at {index[2].TimeUs} µs");
    }

    [Fact]
    public async Task Input_lands_in_the_input_file_in_order_and_reaches_the_program()
    {
        var chunks = new[] { "first ", "sécond\t", "\x7f\x1b[A", "4th\r", "last." }.Select(Encoding.UTF8.GetBytes).ToArray();
        var total = chunks.Sum(c => c.Length);
        var directory = Directory.CreateTempSubdirectory("parley-input-").FullName;
        try
        {
            var received = Path.Combine(directory, "received");
            // Raw and without echo, the program reads exactly the bytes typed; "ready" says the mode is set.
            using var run = RecordedRun.Start("sh", "-c", $"stty raw -echo && printf ready && head -c {total} > \"$1\" && printf done", "sh", received);
            run.WaitForOutput("ready");
            var offsets = new List<long>();
            foreach (var chunk in chunks)
            {
                offsets.Add(run.Session.InputLength);
                Assert.True(run.Session.WriteInput(chunk));
                Thread.Sleep(50);
            }
            var exit = await run.ExitAsync();
            Assert.Equal(0, exit.Code);

            var expected = chunks.SelectMany(c => c).ToArray();
            Assert.Equal(expected, run.InputFile);
            Assert.Equal(expected, await File.ReadAllBytesAsync(received));
            Assert.False(run.Session.WriteInput("late"u8), "input after the end is refused");
            Assert.Equal(expected, run.InputFile);

            var reader = run.Open();
            Assert.Equal(total, reader.Meta.InputBytes);
            Assert.Equal(expected.AsSpan(5, 9).ToArray(), reader.ReadInput(5, 9));
            var index = reader.InputIndex().ToList();
            RecordedRun.AssertIndexWellFormed(index, total);
            // Every chunk came at least 50 ms after the one before: each has its own entry, 50 ms or more apart.
            var starts = index.Take(chunks.Length).ToList();
            Assert.Equal(offsets, starts.Select(e => e.Offset).ToList());
            for (var i = 1; i < starts.Count; i++)
            {
                Assert.True(starts[i].TimeUs - starts[i - 1].TimeUs >= 50_000, $"entries {starts[i - 1]} and {starts[i]}");
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Input_from_several_threads_reaches_the_program_in_the_order_it_was_recorded()
    {
        const int threads = 4, writes = 250;
        var chunk = (int t, int i) => Encoding.ASCII.GetBytes($"<{t}:{i:D3}>");
        var total = Enumerable.Range(0, threads).Sum(t => Enumerable.Range(0, writes).Sum(i => chunk(t, i).Length));
        var directory = Directory.CreateTempSubdirectory("parley-input-").FullName;
        try
        {
            var received = Path.Combine(directory, "received");
            using var run = RecordedRun.Start("sh", "-c", $"stty raw -echo && printf ready && head -c {total} > \"$1\"", "sh", received);
            run.WaitForOutput("ready");
            var refused = 0;
            var writers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                for (var i = 0; i < writes; i++)
                {
                    if (!run.Session.WriteInput(chunk(t, i)))
                    {
                        Interlocked.Increment(ref refused);
                    }
                }
            })).ToList();
            writers.ForEach(w => w.Start());
            Assert.All(writers, w => Assert.True(w.Join(RecordedRun.Timeout)));
            Assert.Equal(0, refused);
            Assert.Equal(0, (await run.ExitAsync()).Code);

            var recorded = run.InputFile;
            Assert.Equal(total, recorded.Length);
            // What the program read is what was recorded, in the same order...
            Assert.Equal(recorded, await File.ReadAllBytesAsync(received));
            // ...and each thread's chunks are whole and in its own order.
            var text = Encoding.ASCII.GetString(recorded);
            for (var t = 0; t < threads; t++)
            {
                var mine = System.Text.RegularExpressions.Regex.Matches(text, $"<{t}:(\\d{{3}})>").Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
                Assert.Equal(Enumerable.Range(0, writes).ToList(), mine);
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task The_meta_holds_awkward_arguments_as_valid_json_and_the_sizes_start_end_and_exit()
    {
        string[] awkward = ["q\"uo'te", "back\\slash\\", "new\nline\r\n", "ünïcødé ✓ 😀", "\x01\x07\x1b[31m\x7f", "\u2028\u2029", "", "-- --x"];
        var before = DateTimeOffset.UtcNow;
        using var run = RecordedRun.Start(["sh", "-c", "printf ready; read line; exit 3", "sh", .. awkward], cols: 90, rows: 20);
        run.WaitForOutput("ready");

        var running = run.Open().Meta;
        Assert.Null(running.EndedAt);
        Assert.Null(running.DurationUs);
        Assert.Null(running.ExitCode);
        Assert.Equal(run.Session.Pid, running.Pid);

        run.Session.Resize(100, 30);
        run.Session.Resize(100, 30); // the same size again records nothing
        run.Session.Resize(120, 40);
        Assert.Equal(2, run.Open().Meta.Resizes.Count); // each resize is in the file at once
        run.Session.WriteInput("go\r"u8);
        var exit = await run.ExitAsync();
        var after = DateTimeOffset.UtcNow;
        Assert.Equal(new TerminalExit(3, null), exit);

        var bytes = await File.ReadAllBytesAsync(run.Prefix + RecordingFiles.Meta);
        // Control characters are escaped: the only raw control byte in the file is the newline of the layout.
        Assert.All(bytes, b => Assert.True(b >= 0x20 || b == (byte)'\n', $"raw byte 0x{b:x2} in the meta"));
        using var json = JsonDocument.Parse(bytes);
        var root = json.RootElement;
        Assert.Equal(["sh", "-c", "printf ready; read line; exit 3", "sh", .. awkward], root.GetProperty("command").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(1, root.GetProperty("version").GetInt32());
        Assert.Equal(run.Session.Id, root.GetProperty("id").GetString());
        Assert.Equal("sh", root.GetProperty("name").GetString());
        Assert.Equal((90, 20), (root.GetProperty("cols").GetInt32(), root.GetProperty("rows").GetInt32()));
        Assert.Equal(3, root.GetProperty("exit_code").GetInt32());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("signal").ValueKind);

        var meta = run.Open().Meta;
        Assert.Equal(["sh", "-c", "printf ready; read line; exit 3", "sh", .. awkward], meta.Command);
        Assert.Equal([(100, 30), (120, 40)], meta.Resizes.Select(r => (r.Cols, r.Rows)).ToArray());
        Assert.True(meta.Resizes[0].TUs >= 0 && meta.Resizes[1].TUs >= meta.Resizes[0].TUs);
        Assert.InRange(meta.StartedAt, before.AddSeconds(-1), after);
        Assert.NotNull(meta.EndedAt);
        Assert.InRange(meta.EndedAt!.Value, meta.StartedAt, after.AddSeconds(1));
        Assert.True(meta.DurationUs > 0 && meta.Resizes[1].TUs <= meta.DurationUs, $"duration {meta.DurationUs}, last resize {meta.Resizes[1].TUs}");
        Assert.Equal(meta.StartedAt.AddTicks(meta.DurationUs!.Value * 10), meta.EndedAt);
        Assert.Equal(run.OutputFile.Length, meta.OutputBytes);
        Assert.Equal(3, meta.InputBytes);
        Assert.Equal(Directory.GetCurrentDirectory(), meta.Cwd);
    }

    [Fact]
    public async Task A_command_killed_by_a_signal_has_the_signal_and_no_exit_code_in_the_meta()
    {
        using var run = RecordedRun.Start("sh", "-c", "printf ready; exec sleep 30");
        run.WaitForOutput("ready");
        Assert.True(run.Session.Signal(SignalNumbers.Term));
        var exit = await run.ExitAsync();
        Assert.Equal(new TerminalExit(null, SignalNumbers.Term), exit);
        Assert.Equal(128 + SignalNumbers.Term, exit.Code);
        var meta = run.Open().Meta;
        Assert.Null(meta.ExitCode);
        Assert.Equal(SignalNumbers.Term, meta.Signal);
        Assert.NotNull(meta.EndedAt);
    }
}
