namespace Parley.Server.Streams;

/// <summary>
/// Plain JSON WebSocket streams (<c>/ws/…</c>, docs/protocol.md §16). Config section <c>streams</c>
/// (env <c>PARLEY_STREAMS__…</c>). Defaults live here and only here.
/// </summary>
public sealed class PlainStreamOptions
{
    /// <summary>A stream that receives no client frame (not even a ping) for this long is closed with 1001. Default 90 s; 1 s … 1 h.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(90);

    /// <summary>
    /// Delta frames that may wait for one stream's writer. One more and the stream has fallen behind: its
    /// waiting deltas are dropped and it gets a fresh <c>snapshot</c> once its writer catches up. Default 256; 8 … 100,000.
    /// </summary>
    public int MaxQueuedFrames { get; set; } = 256;

    /// <summary>Largest client frame, in bytes; a bigger one closes the stream with 1009. Default 4096; 128 … 1 MiB.</summary>
    public int MaxClientFrameBytes { get; set; } = 4096;

    /// <summary>Recent message events kept for the <c>snapshot</c> of <c>/ws/messages</c> and <c>events:messages</c>. Default 100; 1 … 10,000.</summary>
    public int RecentMessageEvents { get; set; } = Parley.Hub.Inbox.MessageEvents.DefaultRecentEvents;

    /// <summary>Throws when a setting is out of range, naming it and its bounds.</summary>
    public void Validate()
    {
        if (IdleTimeout < TimeSpan.FromSeconds(1) || IdleTimeout > TimeSpan.FromHours(1))
        {
            throw new ArgumentException("streams.IdleTimeout must be between 1 second and 1 hour");
        }
        if (MaxQueuedFrames is < 8 or > 100_000)
        {
            throw new ArgumentException("streams.MaxQueuedFrames must be in [8, 100000]");
        }
        if (MaxClientFrameBytes is < 128 or > 1024 * 1024)
        {
            throw new ArgumentException("streams.MaxClientFrameBytes must be in [128, 1048576]");
        }
        if (RecentMessageEvents is < 1 or > 10_000)
        {
            throw new ArgumentException("streams.RecentMessageEvents must be in [1, 10000]");
        }
    }
}
