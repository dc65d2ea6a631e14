using Parley.Terminal.Pty;

namespace Parley.Terminal.Tests;

public sealed class PtyNativeTests
{
    [Fact]
    public void A_new_pair_has_a_slave_path_window_size_and_modes()
    {
        var (master, path) = PtyNative.OpenPty();
        try
        {
            Assert.Matches(@"^/dev/pts/\d+$", path);
            PtyNative.SetWindowSize(master, 132, 43);
            Assert.Equal((132, 43), PtyNative.GetWindowSize(master));
            var slave = PtyNative.OpenNoCtty(path);
            try
            {
                Assert.True(PtyNative.IsTerminal(slave));
                Assert.Equal((132, 43), PtyNative.GetWindowSize(slave));
                var cooked = PtyNative.GetAttributes(slave);
                Assert.True(cooked.Canonical);
                var raw = PtyNative.MakeRaw(cooked);
                Assert.False(raw.Canonical);
                PtyNative.SetAttributesNow(slave, raw);
                // On Linux the master reports the slave's modes.
                Assert.Equal(raw, PtyNative.GetAttributes(master));
                PtyNative.SetAttributesNow(slave, cooked);
                Assert.Equal(cooked, PtyNative.GetAttributes(master));
            }
            finally
            {
                PtyNative.Close(slave);
            }
        }
        finally
        {
            PtyNative.Close(master);
        }
    }

    [Fact]
    public void Reads_on_the_master_report_nothing_yet_then_hang_up()
    {
        var (master, path) = PtyNative.OpenPty();
        try
        {
            var buffer = new byte[16];
            var slave = PtyNative.OpenNoCtty(path);
            Assert.Equal(0, PtyNative.Read(master, buffer)); // non-blocking, nothing written
            PtyNative.WriteAll(slave, "x"u8);
            Assert.True(PtyNative.WaitReadable(master, 5000));
            Assert.Equal(1, PtyNative.Read(master, buffer));
            PtyNative.Close(slave);
            // The hang-up reaches the master asynchronously: poll reports it (POLLHUP), then the read says EIO.
            Assert.True(PtyNative.WaitReadable(master, 5000));
            Assert.Equal(-1, PtyNative.Read(master, buffer)); // EIO: no slave left
        }
        finally
        {
            PtyNative.Close(master);
        }
    }

    [Fact]
    public void A_plain_file_is_not_a_terminal()
    {
        using var file = File.Create(Path.GetTempFileName());
        Assert.False(PtyNative.IsTerminal((int)file.SafeFileHandle.DangerousGetHandle()));
        Assert.Null(PtyNative.GetWindowSize((int)file.SafeFileHandle.DangerousGetHandle()));
    }
}
