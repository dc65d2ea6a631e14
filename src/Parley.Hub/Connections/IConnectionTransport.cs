namespace Parley.Hub.Connections;

/// <summary>
/// The seam between the hub and a socket: an ordered, bounded outbound queue of complete WebSocket
/// frames plus close. The server's transport implements it (RFC 6455 over Kestrel); tests may use an
/// in-memory one. Frames are shared between subscribers and must not be modified.
/// </summary>
public interface IConnectionTransport
{
    /// <summary>
    /// Queues a complete frame without waiting. Returns false when the connection is closing or closed,
    /// or when the frame would overflow the queue — in which case the transport closes the connection
    /// with <c>4008 "slow consumer"</c>. Never blocks: a broadcast never waits for a slow socket.
    /// </summary>
    bool TrySend(byte[] frame);

    /// <summary>
    /// Queues several frames as one unit, in order: one wake-up and one flush for the lot (a commit
    /// batch's messages on a topic, or a pusher's replies). Same overflow rules as a single frame.
    /// </summary>
    bool TrySend(FrameBatch batch)
    {
        foreach (var frame in batch.Frames)
        {
            if (!TrySend(frame))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Queues a frame, waiting while the queue is over half full (used for replays, which only slow
    /// the joining connection itself). Returns false if the connection closed meanwhile.
    /// </summary>
    ValueTask<bool> SendAsync(byte[] frame, CancellationToken cancellationToken);

    /// <summary>Sends a close frame after what is already queued, then ends the connection. Idempotent.</summary>
    void Close(ushort code, string reason);

    /// <summary>True once closing has begun.</summary>
    bool IsClosing { get; }

    /// <summary>Bytes queued and not yet handed to the socket (what a snapshot + delta stream watches to notice a lagging consumer).</summary>
    long QueuedBytes => 0;
}

/// <summary>Complete frames queued together; shared, read-only, by every subscriber that receives them.</summary>
public sealed class FrameBatch
{
    public FrameBatch(byte[][] frames)
    {
        Frames = frames;
        foreach (var frame in frames)
        {
            TotalBytes += frame.Length;
        }
    }

    /// <summary>The frames, in send order.</summary>
    public byte[][] Frames { get; }

    /// <summary>Sum of the frames' lengths.</summary>
    public int TotalBytes { get; }
}
