using Parley.Hub.Connections;
using Parley.Protocol;

namespace Parley.Hub.Channels;

/// <summary>One inbound message on its connection, as handed to a channel handler.</summary>
public readonly record struct ChannelRequest(HubConnection Connection, PhoenixMessage Message);

/// <summary>
/// Serves every topic that starts with <see cref="TopicPrefix"/> (e.g. <c>room:</c>). Handlers reply
/// through <see cref="HubConnection"/>; the connection has already applied rate limits, topic limits
/// and the join authorizer.
/// </summary>
public interface IChannelHandler
{
    /// <summary>The topic prefix served, including the colon.</summary>
    string TopicPrefix { get; }

    /// <summary>
    /// Handles <c>phx_join</c>: replies ok or error and returns the subscriber when joined, null when
    /// rejected. On an exception the connection replies <c>join crashed</c>; the handler must not leave
    /// a subscriber behind.
    /// </summary>
    ValueTask<Subscriber?> JoinAsync(ChannelRequest request, CancellationToken cancellationToken);

    /// <summary>Handles any other event on a joined topic; must reply when the message has a ref.</summary>
    ValueTask HandleAsync(ChannelRequest request, Subscriber subscriber, CancellationToken cancellationToken);

    /// <summary>
    /// True for a push that does not count towards the connection's push rate: bulk data the channel paces and
    /// bounds itself (a terminal owner's recorded bytes). Asked only for binary pushes. Default false.
    /// </summary>
    bool IsBulkPush(Subscriber subscriber, PhoenixMessage message) => false;

    /// <summary>Called after the subscriber left (leave, rejoin, kick or disconnect).</summary>
    void OnLeft(Subscriber subscriber)
    {
    }
}

/// <summary>Finds the handler for a topic by prefix. Registration happens at start-up.</summary>
public sealed class ChannelRouter
{
    private readonly List<IChannelHandler> _handlers = [];

    /// <summary>Adds a handler; a prefix may be served by one handler only.</summary>
    public void Add(IChannelHandler handler)
    {
        if (_handlers.Exists(h => h.TopicPrefix == handler.TopicPrefix))
        {
            throw new InvalidOperationException($"topic prefix '{handler.TopicPrefix}' already has a handler");
        }
        _handlers.Add(handler);
    }

    /// <summary>The handler for <paramref name="topic"/>, or null ("unmatched topic").</summary>
    public IChannelHandler? Match(string topic)
    {
        foreach (var handler in _handlers)
        {
            if (topic.StartsWith(handler.TopicPrefix, StringComparison.Ordinal))
            {
                return handler;
            }
        }
        return null;
    }
}
