using Parley.Hub.Channels;

namespace Parley.Hub.Connections;

/// <summary>
/// The topics one connection has joined, by name. Most sockets join one to a few topics, so entries
/// live in a small array searched linearly; past <see cref="LinearLimit"/> a dictionary takes over.
/// Idle memory per socket is a goal: an empty or one-topic map is one small array, not a dictionary.
/// Not thread-safe: the owner locks.
/// </summary>
internal sealed class JoinedTopics
{
    private const int LinearLimit = 8;

    private (string Topic, IChannelHandler Handler, Subscriber Subscriber)[] _entries = [];
    private int _count;
    private Dictionary<string, (IChannelHandler Handler, Subscriber Subscriber)>? _map;

    public int Count => _map?.Count ?? _count;

    public bool TryGet(string topic, out (IChannelHandler Handler, Subscriber Subscriber) joined)
    {
        if (_map is not null)
        {
            return _map.TryGetValue(topic, out joined);
        }
        var index = IndexOf(topic);
        joined = index < 0 ? default : (_entries[index].Handler, _entries[index].Subscriber);
        return index >= 0;
    }

    /// <summary>Adds the topic or replaces its entry.</summary>
    public void Set(string topic, IChannelHandler handler, Subscriber subscriber)
    {
        if (_map is not null)
        {
            _map[topic] = (handler, subscriber);
            return;
        }
        var index = IndexOf(topic);
        if (index >= 0)
        {
            _entries[index] = (topic, handler, subscriber);
            return;
        }
        if (_count == LinearLimit)
        {
            _map = new Dictionary<string, (IChannelHandler, Subscriber)>(LinearLimit * 2, StringComparer.Ordinal);
            for (var i = 0; i < _count; i++)
            {
                _map[_entries[i].Topic] = (_entries[i].Handler, _entries[i].Subscriber);
            }
            _map[topic] = (handler, subscriber);
            _entries = [];
            _count = 0;
            return;
        }
        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, Math.Max(1, _count * 2));
        }
        _entries[_count++] = (topic, handler, subscriber);
    }

    public bool Remove(string topic, out (IChannelHandler Handler, Subscriber Subscriber) joined)
    {
        if (_map is not null)
        {
            return _map.Remove(topic, out joined);
        }
        var index = IndexOf(topic);
        if (index < 0)
        {
            joined = default;
            return false;
        }
        joined = (_entries[index].Handler, _entries[index].Subscriber);
        _entries[index] = _entries[--_count];
        _entries[_count] = default;
        return true;
    }

    /// <summary>Removes and returns every entry.</summary>
    public List<(IChannelHandler Handler, Subscriber Subscriber)> TakeAll()
    {
        List<(IChannelHandler Handler, Subscriber Subscriber)> all;
        if (_map is not null)
        {
            all = [.. _map.Values];
            _map = null;
        }
        else
        {
            all = new List<(IChannelHandler, Subscriber)>(_count);
            for (var i = 0; i < _count; i++)
            {
                all.Add((_entries[i].Handler, _entries[i].Subscriber));
            }
        }
        _entries = [];
        _count = 0;
        return all;
    }

    private int IndexOf(string topic)
    {
        for (var i = 0; i < _count; i++)
        {
            if (string.Equals(_entries[i].Topic, topic, StringComparison.Ordinal))
            {
                return i;
            }
        }
        return -1;
    }
}
